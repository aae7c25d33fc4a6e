/// The layout of every packet buffer ("slot") the packet paths work in, defined once.
///
///     0                    10                   20                                    size
///     |                    | virtio-net header  | inner packet (up to 65,535 bytes) ...|
///     | outer IPv4 header (20 bytes, written over the virtio header)                  |
///
/// A packet read from the TUN device lands with its `VirtioNetHeader` just before `innerOffset`, so
/// that encapsulation writes the outer header in place over it; a captured outer packet is copied to
/// offset 0 and its inner packet is sent from where it lies.
public enum PacketSlot {
    /// The outer header ipipd writes: IPv4 without options.
    public static let outerHeaderLength = Encapsulator.headroom
    /// Where an inner packet read from the TUN device starts.
    public static let innerOffset = outerHeaderLength
    /// Where the TUN device's virtio-net header is read to, right before the inner packet.
    public static let virtioHeaderOffset = innerOffset - VirtioNetHeader.size
    /// The largest IPv4 packet.
    public static let maximumPacketLength = 65_535
    /// Room for the largest inner packet behind the outer header.
    public static let size = innerOffset + maximumPacketLength
}
