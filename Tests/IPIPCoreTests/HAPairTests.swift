import Testing
@testable import IPIPCore

/// What `uplink.standby-when-absent` changes without a network: the config key, the plan, the standby's
/// silence in both packet paths, the proxy-ARP responder's announcements and defense, the shared role.
@Suite struct HAPairUnitTests {
    let pair = ConfigLoader.load(yaml: Repository.text("config/ha-pair-b.yaml"), file: "config/ha-pair-b.yaml")

    @Test func theExampleLoadsWithTheKeyAndOtherwiseItDefaultsToNo() throws {
        let config = try #require(pair.config, "\(pair.errors)")
        #expect(config.uplink.standbyWhenAbsent && config.uplink.address == IPAddress("203.0.113.86")!)
        let seed = try #require(ConfigLoader.load(yaml: Repository.text("config/machine-b.yaml"), file: "b").config)
        #expect(!seed.uplink.standbyWhenAbsent)
    }

    @Test func aValueThatIsNotABooleanIsLocated() {
        let yaml = "uplink:\n  interface: eth0\n  address: 203.0.113.86\n  standby-when-absent: sometimes\npeers: []\n"
        let result = ConfigLoader.load(yaml: yaml, file: "pair.yaml")
        #expect(result.config == nil)
        #expect(result.errors.contains { $0.line == 4 && $0.key == "uplink.standby-when-absent" && $0.message.contains("not a boolean") },
                "\(result.errors)")
    }

    @Test func thePlanStartsAsStandbyWhereTheAddressIsAbsentAndSaysWhatEachRoleDoes() throws {
        let config = try #require(pair.config)
        let absent = SystemFacts(interfaces: ["eth0": .init(mtu: 1500, mac: MACAddress("02:00:00:00:00:81")!,
                                                            addresses: [IPv4Address("203.0.113.81")!])])
        let plan = KernelPlan(config: config, facts: absent)
        #expect(plan.problems.isEmpty, "\(plan.problems)")
        #expect(plan.notes.contains { $0.contains("starts as the standby") })
        #expect(plan.notes.contains { $0.hasPrefix("as the standby") && $0.contains("answers no ARP") })
        #expect(plan.notes.contains { $0.hasPrefix("as the active gateway") && $0.contains("gratuitous ARP") })
        // The same steps in either role: the standby is set up, ready to take over.
        var present = absent
        present.interfaces["eth0"]!.addresses.append(IPv4Address("203.0.113.86")!)
        let activePlan = KernelPlan(config: config, facts: present)
        #expect(activePlan.changes == plan.changes)
        #expect(activePlan.notes.contains { $0.contains("starts as the active") })
        // Without the key, an absent address is a problem that names the key.
        var single = config
        single.uplink.standbyWhenAbsent = false
        let problems = KernelPlan(config: single, facts: absent).problems
        #expect(problems == [.uplinkAddressNotAssigned(address: config.uplink.address, interface: config.uplink.interface)])
        #expect(problems.first?.description.contains("set uplink.standby-when-absent: yes") == true)
    }

    @Test func theStandbySendsNothingFromTheTUNAndCountsWhyThenSendsOnceActive() throws {
        let counters = TunnelCounters(peerNames: ["machine-b"])
        let path = EncapsulationPath(config: MachineA.config, tunnelMTU: 1480, counters: counters, paths: [PeerPathState()])
        let sent = SentPackets()
        func read() {
            let packet = [UInt8](repeating: 0, count: 10) + MachineA.inner(length: 100)
            packet.withUnsafeBytes {
                UnsafeMutableRawBufferPointer(rebasing: sent.batch.nextSlot[PacketSlot.virtioHeaderOffset...]).copyMemory(from: $0)
            }
            path.process(readLength: packet.count, in: sent.batch, now: 0)
        }
        path.standby = true
        read()
        #expect(sent.flush().isEmpty && counters.drops.value(.standby) == 1)
        path.standby = false
        read()
        #expect(sent.flush().count == 1)
    }

    @Test func theStandbyDeliversNothingCapturedAndAccountsForTheFrame() throws {
        let counters = TunnelCounters(peerNames: ["machine-b"])
        let path = DecapsulationPath(config: MachineA.config, tunnelMTU: 1480, counters: counters, paths: [PeerPathState()],
                                     localNetworks: LocalNetworks(addresses: []))
        let sent = SentPackets()
        func capture() {
            ethernetFrame(MachineA.outerFromB(MachineA.inner(length: 100))).withUnsafeBytes {
                path.process(frame: $0, wireLength: $0.count, in: sent.batch, now: 0)
            }
        }
        path.standby = true
        capture()
        #expect(sent.flush().isEmpty && counters.drops.value(.standby) == 1)
        #expect(GatewayStatus.Capture(counters.capture).unaccounted == 0)
        path.standby = false
        capture()
        #expect(sent.flush().count == 1)
    }

    @Test func becomingActiveAnnouncesEveryGhostAndTheStandbyCancels() {
        let mac = MACAddress("02:00:00:00:00:81")!
        var responder = ProxyARPResponder(interfaceMAC: mac)
        let ghosts = [IPv4Address("203.0.113.87")!, IPv4Address("203.0.113.88")!]
        for ghost in ghosts { responder.add(ghost, mac: nil, now: 0) }
        responder.cancelAnnouncements()
        #expect(responder.dueAnnouncements(now: 100).isEmpty)
        responder.announceAll(now: 100)
        #expect(Set(responder.dueAnnouncements(now: 100).map(\.ghost)) == Set(ghosts))
        #expect(responder.dueAnnouncements(now: 102).count == 2, "the second announcement, RFC 5227's 2 s later")
        responder.announceAll(now: 200)
        responder.cancelAnnouncements()
        #expect(responder.dueAnnouncements(now: 300).isEmpty)
    }

    /// At a switch-over the partner's frames claim the ghost for a moment: an HA box defends a second
    /// later, and not at all if it has become the standby meanwhile.
    @Test func anHABoxDefendsLateAndNotAtAllOnceStandby() throws {
        let config = try #require(pair.config)
        let ghost = IPv4Address("203.0.113.87")!, ours = MACAddress("02:00:00:00:00:81")!, partner = MACAddress("02:00:00:00:00:82")!
        var responder = ProxyARPResponder(interface: "eth0", mac: ours, config: config, now: 0, announce: false)
        let claim = ARPBuilder.announcement(mac: partner, address: ghost)
        #expect(claim.withUnsafeBytes { responder.handle($0, now: 10) } == .conflict(ghost: ghost, mac: partner, sender: ghost, defense: nil))
        #expect(responder.dueAnnouncements(now: 10.5).isEmpty)
        #expect(responder.dueAnnouncements(now: 11).map(\.frame) == [ARPBuilder.announcement(mac: ours, address: ghost)])
        _ = claim.withUnsafeBytes { responder.handle($0, now: 30) }
        responder.cancelAnnouncements()   // the role watcher said: standby
        #expect(responder.dueAnnouncements(now: 40).isEmpty)
    }

    @Test func theRoleCountsItsChanges() {
        let role = RoleState(.standby, now: 5)
        #expect(!role.isActive && role.changes == 0 && role.since == 5)
        #expect(role.set(.active, now: 7) && role.isActive && role.changes == 1 && role.since == 7)
        #expect(!role.set(.active, now: 8) && role.changes == 1 && role.since == 7)
        #expect(role.set(.standby, now: 9) && role.current == .standby && role.changes == 2)
    }
}
