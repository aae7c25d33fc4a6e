import Foundation
import Testing

/// scripts/install.sh and scripts/uninstall.sh, staged into a scratch root (--destdir): systemd is not
/// running here, and the test must not touch the machine's /etc.
@Suite(.serialized) struct InstallTests {
    @Test func installsWithoutOverwritingTheConfigAndUninstallsKeepingIt() throws {
        let lab = Lab("inst")
        defer { lab.teardown() }
        let root = lab.scratch.appendingPathComponent("root").path
        let install = "\(Lab.repository.path)/scripts/install.sh --destdir \(root) --binary \(Lab.ipipd)"
        try lab.sh(install)
        #expect(FileManager.default.isExecutableFile(atPath: "\(root)/usr/local/sbin/ipipd"))
        let unit = try String(contentsOfFile: "\(root)/etc/systemd/system/ipipd.service", encoding: .utf8)
        #expect(unit.contains("Type=notify"))
        #expect(unit.contains("ExecReload=/usr/local/sbin/ipipd reload -c /etc/ipipd/ipipd.yaml"))
        #expect(unit.contains("ExecStartPre=/usr/local/sbin/ipipd check --quiet -c /etc/ipipd/ipipd.yaml"))
        #expect(unit.contains("ExecStart=/usr/local/sbin/ipipd run -c /etc/ipipd/ipipd.yaml --user ipipd"))
        #expect(!unit.contains("@"), "a placeholder was left in the unit")
        // Every socket family ipipd opens: IPv4 raw sockets, netlink, libpcap, the control socket, and
        // the ICMPv6 socket of a tunnel that carries IPv6 (which fails to open without AF_INET6).
        let families = unit.split(separator: "\n").first { $0.hasPrefix("RestrictAddressFamilies=") }?.split(separator: "=")[1]
            .split(separator: " ").map(String.init) ?? []
        #expect(Set(families) == ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET", "AF_UNIX"], "\(families)")
        // systemd's own check of the unit (where its tools exist), with the paths pointing at this build.
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") {
            let binDirectory = URL(fileURLWithPath: Lab.ipipd).deletingLastPathComponent().path
            let staged = lab.scratch.appendingPathComponent("ipipd.service").path
            try lab.sh("sed -e 's|@SBINDIR@|\(binDirectory)|g' -e 's|@SYSCONFDIR@|/etc|g' \(Lab.repository.path)/packaging/ipipd.service > \(staged)")
            let verify = lab.run("systemd-analyze verify \(staged) 2>&1")
            let complaints = verify.output.split(separator: "\n").filter { !$0.contains("man ipipd") }
            #expect(complaints.isEmpty, "\(verify.output)")
        }
        let config = "\(root)/etc/ipipd/ipipd.yaml"
        #expect(try lab.sh("stat -c %a \(config)") == "640\n")
        // The example config is valid as installed.
        try lab.sh("\(root)/usr/local/sbin/ipipd check -q -c \(config)")

        try "# edited by the admin\n".write(toFile: config, atomically: true, encoding: .utf8)
        let again = try lab.sh(install)
        #expect(again.contains("kept the existing"))
        #expect(try String(contentsOfFile: config, encoding: .utf8) == "# edited by the admin\n")

        try lab.sh("\(Lab.repository.path)/scripts/uninstall.sh --destdir \(root)")
        #expect(!FileManager.default.fileExists(atPath: "\(root)/usr/local/sbin/ipipd"))
        #expect(!FileManager.default.fileExists(atPath: "\(root)/etc/systemd/system/ipipd.service"))
        #expect(FileManager.default.fileExists(atPath: config))
        try lab.sh("\(Lab.repository.path)/scripts/uninstall.sh --destdir \(root) --purge")
        #expect(!FileManager.default.fileExists(atPath: "\(root)/etc/ipipd"))
    }
}
