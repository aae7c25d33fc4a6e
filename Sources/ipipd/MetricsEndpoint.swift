import IPIPCore
import IPIPDataplane
import Logging

/// `GET /metrics` (and `HEAD`) in the Prometheus text format, on the listener the gateway opened for
/// `metrics.listen`, served by its own thread. The dataplane's own counters are the source of truth:
/// each scrape renders them afresh (`GatewayStatus.prometheus`, one pass, linear in the series, always
/// in the same order), so what is exported is exactly what the counters hold — a peer removed by a
/// reload disappears, one added back starts again from zero (a counter reset, which Prometheus's rate()
/// expects) — and there is no state to get out of step. (swift-prometheus's registry, rebuilt per scrape
/// as this needs, cost time growing with the square of a hub's series, in an order that changed from
/// scrape to scrape.)
final class MetricsEndpoint: @unchecked Sendable {
    private let logger: Logger
    private var thread: DedicatedThread?
    private let stopSignal = StopSignal()

    init(logger: Logger) {
        self.logger = logger
    }

    func start(serving gateway: Gateway, on server: StreamServer) throws {
        thread = try DedicatedThread(name: "ipipd-metrics") { [self] in
            PrivilegeDrop.dropCapabilitiesOfThisThread(logger, thread: "ipipd-metrics")
            server.serve(until: stopSignal, isComplete: Self.isCompleteRequest) { request in
                self.answer(request, gateway: gateway)
            }
        }
    }

    func stop() {
        stopSignal.stop()
        thread?.join()
    }

    /// The request's headers have ended.
    static func isCompleteRequest(_ bytes: [UInt8]) -> Bool {
        let end: [UInt8] = Array("\r\n\r\n".utf8), bareEnd: [UInt8] = Array("\n\n".utf8)
        return bytes.count >= 2 && (bytes.suffix(4).elementsEqual(end) || bytes.suffix(2).elementsEqual(bareEnd))
    }

    private func answer(_ request: [UInt8], gateway: Gateway) -> [UInt8]? {
        let line = String(decoding: request.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        guard !line.isEmpty else { return nil }
        let words = line.split(separator: " ")
        let method = words.first.map(String.init) ?? ""
        let path = words.count > 1 ? words[1].split(separator: "?", maxSplits: 1).first.map(String.init) ?? "" : ""
        guard path == "/metrics" else {
            return Self.response("404 Not Found", "text/plain", Array("ipipd serves /metrics only\n".utf8), head: method == "HEAD")
        }
        guard method == "GET" || method == "HEAD" else {
            return Self.response("405 Method Not Allowed", "text/plain", Array("GET or HEAD\n".utf8), head: false, allow: true)
        }
        let body = gateway.status.prometheus(process: SystemProbe.processFacts())
        return Self.response("200 OK", "text/plain; version=0.0.4; charset=utf-8", body, head: method == "HEAD")
    }

    /// An HTTP/1.0 response; for HEAD, its headers alone (the length of the body a GET would get).
    static func response(_ status: String, _ type: String, _ body: [UInt8], head: Bool, allow: Bool = false) -> [UInt8] {
        Array("HTTP/1.0 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\n\(allow ? "Allow: GET, HEAD\r\n" : "")Connection: close\r\n\r\n".utf8)
            + (head ? [] : body)
    }
}
