/// Whether a running gateway forwards, as `ipipd status --check` judges it for keepalived's
/// `vrrp_script`: a box whose daemon answers but whose dataplane does not would otherwise keep the
/// virtual address and forward nothing.
extension GatewayStatus {
    /// What keeps the gateway from forwarding; empty when it is healthy. An HA pair's standby is
    /// healthy when its loops run: it must stay eligible to take over.
    public var healthProblems: [String] {
        var problems: [String] = []
        if !tunnelPresent {
            problems.append("the TUN device \(tunnel) is gone")
        }
        for loop in loops where loop.state != LoopHealth.State.running.label {
            let why = loop.lastError.map { " (last error: \($0))" } ?? ""
            problems.append("\(loop.name) is \(loop.state)\(why)")
        }
        if loops.isEmpty {
            problems.append("no dataplane loop runs")
        }
        return problems
    }
}
