import Logging
import Testing
@testable import IPIPDataplane

/// The shape of ipipd's log lines: what a terminal, a file and journald get.
@Suite struct DaemonLogHandlerTests {
    @Test func valuesAreQuotedWhenTheyAreMoreThanAWord() {
        #expect(DaemonLogHandler.quoted("machine-a") == "machine-a")
        #expect(DaemonLogHandler.quoted("route 198.18.0.0/24 added") == "\"route 198.18.0.0/24 added\"")
        #expect(DaemonLogHandler.quoted("a=b") == "\"a=b\"")
        #expect(DaemonLogHandler.quoted("say \"hi\"\\") == "\"say \\\"hi\\\"\\\\\"")
        #expect(DaemonLogHandler.quoted("two\nlines") == "\"two\\nlines\"")
        #expect(DaemonLogHandler.quoted("") == "\"\"")
        #expect(DaemonLogHandler.line("reloaded", [("changes", "peer a: route added"), ("file", "/etc/ipipd/ipipd.yaml")])
                == "reloaded changes=\"peer a: route added\" file=/etc/ipipd/ipipd.yaml")
    }

    @Test func levelsAreSyslogPriorities() {
        #expect([Logger.Level.trace, .debug, .info, .notice, .warning, .error, .critical].map(DaemonLogHandler.priority) == [7, 7, 6, 5, 4, 3, 2])
    }

    /// Metadata keys become journal fields journald accepts: upper case, no leading `_` or digit.
    @Test func metadataKeysBecomeJournalFields() {
        #expect(DaemonLogHandler.fieldName("peer") == "PEER")
        #expect(DaemonLogHandler.fieldName("path-mtu") == "PATH_MTU")
        #expect(DaemonLogHandler.fieldName("_PID") == "PID")
        #expect(DaemonLogHandler.fieldName("9lives") == "IPIPD_9LIVES")
        let datagram = DaemonLogHandler.journalFields("tunnel up device=tunl", priority: 6, [("device", "tunl"), ("note", "a\nb")])
        var expected = Array("MESSAGE=tunnel up device=tunl\nPRIORITY=6\nSYSLOG_IDENTIFIER=ipipd\nDEVICE=tunl\nNOTE\n".utf8)
        expected += [3, 0, 0, 0, 0, 0, 0, 0] + Array("a\nb\n".utf8)
        #expect(datagram == expected)
    }
}
