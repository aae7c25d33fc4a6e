#if canImport(Glibc)
import Glibc
#endif

/// Sends the ICMPv6 errors ipipd answers IPv6 senders with (packet too big, address unreachable, hop
/// limit exceeded) through a raw ICMPv6 socket: the kernel routes each one, picks this machine's source
/// address towards the destination and computes the checksum (RFC 3542 §3.1), as for its own errors.
public final class RawICMPv6Sender: @unchecked Sendable {
    public let fileDescriptor: Int32

    public init() throws(SystemError) {
        fileDescriptor = socket(AF_INET6, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_ICMPV6))
        guard fileDescriptor >= 0 else { throw SystemError.fromErrno("open a raw ICMPv6 socket") }
        // It only sends: a filter that blocks every type keeps the kernel from queueing what arrives.
        var blockAll = [UInt32](repeating: UInt32.max, count: 8)   // struct icmp6_filter: a set bit blocks a type
        if setsockopt(fileDescriptor, Int32(IPPROTO_ICMPV6), 1 /* ICMP6_FILTER */, &blockAll, socklen_t(32)) != 0 {
            let error = SystemError.fromErrno("block every ICMPv6 type on the raw ICMPv6 socket")
            Glibc.close(fileDescriptor)
            throw error
        }
    }

    deinit { Glibc.close(fileDescriptor) }

    /// Sends the ICMPv6 message of `packet` (a whole IPv6 packet as `ICMPv6ErrorRules` writes it) to its
    /// IPv6 destination. False (errno set) when the kernel refused it.
    public func send(_ packet: UnsafeRawBufferPointer) -> Bool {
        guard packet.count > 48 else { return false }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        withUnsafeMutableBytes(of: &address.sin6_addr) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: packet[24..<40])) }
        let message = UnsafeRawBufferPointer(rebasing: packet[40...])
        let sent = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                let destination = $0
                return retryOnInterrupt {
                    sendto(fileDescriptor, message.baseAddress, message.count, Int32(MSG_DONTWAIT), destination,
                           socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        }
        return sent == message.count
    }
}
