import Logging

/// Logs an event at most once per interval, with how many were suppressed in between: what a flood of
/// bad packets may cost in log lines. Used by one thread.
final class ThrottledLog {
    let logger: Logger
    let message: Logger.Message
    let interval: Double
    private var lastLogged = -Double.infinity
    private var suppressed = 0

    init(logger: Logger, message: Logger.Message, interval: Double = 10) {
        self.logger = logger
        self.message = message
        self.interval = interval
    }

    func note(_ metadata: Logger.Metadata) {
        let now = monotonicSeconds()
        guard now - lastLogged >= interval else {
            suppressed += 1
            return
        }
        var metadata = metadata
        if suppressed > 0 { metadata["suppressed"] = "\(suppressed)" }
        logger.warning(message, metadata: metadata)
        lastLogged = now
        suppressed = 0
    }
}
