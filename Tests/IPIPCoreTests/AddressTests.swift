import PropertyBased
import Testing
@testable import IPIPCore

@Suite struct AddressTests {
    @Test func parsesAndPrintsDottedQuad() {
        #expect(IPv4Address("203.0.113.87")?.value == 0xCB00_7157)
        #expect(IPv4Address("203.0.113.87")?.description == "203.0.113.87")
        #expect(IPv4Address(0, 0, 0, 0).description == "0.0.0.0")
    }

    @Test(arguments: ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.-4", " 1.2.3.4", "1..3.4", "a.b.c.d", "1.2.3.4/24",
                      "1.2.3.4.", ".1.2.3", "1.2.3.00", "1.2.3.1000", "1.2.3.4 ", "\u{661}.2.3.4", "1.2.3.0x1", "+1.2.3.4"])
    func rejectsMalformedAddress(_ text: String) {
        #expect(IPv4Address(text) == nil)
    }

    @Test func parsesPrefixesAndDetectsHostBits() throws {
        let prefix = try #require(IPv4Prefix("192.0.2.128/24"))
        #expect(prefix.hasHostBitsSet)
        #expect(prefix.network.description == "192.0.2.0/24")
        #expect(IPv4Prefix("192.0.2.7")?.length == 32)
        #expect(IPv4Prefix("0.0.0.0/0")?.contains(IPv4Address("203.0.113.1")!) == true)
        #expect(IPv4Prefix("192.0.2.0/33") == nil)
        #expect(IPv4Prefix("192.0.2.0/") == nil)
        #expect(IPv4Prefix("192.0.2.0/24/1") == nil)
        #expect(IPv4Prefix("192.0.2.0/a") == nil && IPv4Prefix("192.0.2.0/-1") == nil && IPv4Prefix("192.0.2.0/ 8") == nil)
        #expect(IPv4Prefix("192.0.2.0/123") == nil && IPv4Prefix("/24") == nil && IPv4Prefix("192.0.2.0/08")?.length == 8)
        #expect(IPv4Prefix("203.0.113.0/24")!.contains(IPv4Prefix("203.0.113.87/32")!))
        #expect(!IPv4Prefix("203.0.113.87/32")!.contains(IPv4Prefix("203.0.113.0/24")!))
    }

    /// The byte parser agrees with the plain definition — four decimal octets 0–255 without leading
    /// zeros — on random texts made of digits and dots, and every address reads back what it prints.
    @Test func parsingAgreesWithTheDefinition() async {
        let character = Gen.int(in: 0...11).map { Array("0123456789.5")[$0] }
        await propertyCheck(count: 2000, input: character.array(of: 0...16), Gen.uint32()) { characters, value in
            let text = String(characters)
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            let valid = parts.count == 4 && parts.allSatisfy { part in
                !part.isEmpty && part.count <= 3 && !(part.count > 1 && part.first == "0") && Int(part)! <= 255
            }
            #expect((IPv4Address(text) != nil) == valid, "\(text)")
            #expect(IPv4Address(IPv4Address(value).description)?.value == value)
        }
    }

    @Test func parsesMACAddresses() {
        let mac = MACAddress("02:00:00:00:00:86")
        #expect(mac?.description == "02:00:00:00:00:86")
        #expect(MACAddress("02-00-00-00-00-86") == mac)
        #expect(MACAddress("02:00:00:00:00") == nil)
        #expect(MACAddress("02:00:00:00:00:8g") == nil)
        #expect(MACAddress.broadcast.isMulticast)
        #expect(mac?.isMulticast == false)
    }
}
