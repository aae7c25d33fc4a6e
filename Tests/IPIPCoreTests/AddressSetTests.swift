import Testing
@testable import IPIPCore

@Suite struct AddressSetTests {
    @Test func containsExactlyItsAddressesWhateverTheirOrder() {
        let members = [IPv4Address(203, 0, 113, 87), IPv4Address(0, 0, 0, 0), IPv4Address(255, 255, 255, 255),
                       IPv4Address(198, 51, 100, 37), IPv4Address(198, 51, 100, 37), IPv4Address(192, 0, 2, 255)]
        let set = AddressSet(members)
        #expect(set.count == 5)
        for member in members { #expect(set.contains(member)) }
        for stranger in [IPv4Address(198, 51, 100, 36), IPv4Address(198, 51, 100, 38), IPv4Address(1, 2, 3, 4), IPv4Address(255, 255, 255, 254)] {
            #expect(!set.contains(stranger), "\(stranger)")
        }
        #expect(!AddressSet([]).contains(IPv4Address(0, 0, 0, 0)))
    }
}
