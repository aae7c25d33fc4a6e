import Foundation
import Testing

/// The Debian package as a gateway box without Swift gets it: built by scripts/package.sh (lintian
/// must find nothing), then scripts/package-test.sh installs it into a clean Debian 12 root made with
/// debootstrap, boots that root with systemd in machine B's namespace of the seed lab, deploys B from
/// the package as the README says, upgrades, removes and purges it. Needs root and Debian's mirror.
@Suite(.serialized, .enabled(if: Lab.isRoot, "needs root: debootstrap, chroot, systemd-nspawn, namespaces"))
struct PackageTests {
    @Test func packageBuildsCleanlyInstallsWithoutSwiftAndDeploysMachineBUnderSystemd() throws {
        let lab = Lab("pkg")
        defer { lab.teardown() }
        let scripts = "\(Lab.repository.path)/scripts"
        // stdout is the package's path, stderr the build's progress and lintian's findings.
        let build = lab.run("\(scripts)/package.sh --lintian --output \(lab.scratch.path) 2>\(lab.scratch.path)/build.log",
                            timeout: 1500)
        let buildLog = (try? String(contentsOfFile: "\(lab.scratch.path)/build.log", encoding: .utf8)) ?? ""
        try #require(build.status == 0, "package.sh failed:\n\(buildLog.suffix(3000))")
        let deb = build.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(deb.hasSuffix("_amd64.deb") && FileManager.default.fileExists(atPath: deb), "\(deb)")
        let findings = buildLog.split(separator: "\n").drop { $0 != "lintian:" }.dropFirst()
            .filter { $0.hasPrefix("E: ") || $0.hasPrefix("W: ") }
        #expect(findings.isEmpty, "lintian: \(findings.joined(separator: "\n"))")
        // The fail points the rollback tests use exist in debug builds only: the packaged binary reads no such variable.
        let failPoints = lab.run("dpkg-deb --fsys-tarfile \(deb) | tar -xOf - ./usr/sbin/ipipd | grep -ac IPIPD_DEBUG_FAIL")
        #expect(failPoints.output.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(failPoints.output)")
        // Bounded inside, so that the script's own cleanup runs should it hang (SIGTERM, not SIGKILL).
        let test = lab.run("timeout -s TERM 1200 \(scripts)/package-test.sh --deb \(deb)", timeout: 1300)
        #expect(test.status == 0, "package-test.sh:\n\(test.output.suffix(4000))")
        #expect(test.output.contains("== the package installs, runs and deploys machine B where no Swift exists"))
    }
}
