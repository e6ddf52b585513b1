import Foundation

/// SplitMix64: a small seeded generator, so a failing randomized test replays from the seed it prints.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension SplitMix64 {
    /// A generator seeded from `SPARKGATE_TEST_SEED` when set (to replay a failure), or at random; the seed
    /// is printed under `label` either way.
    public static func seeded(_ label: String) -> (generator: SplitMix64, seed: UInt64) {
        let seed =
            ProcessInfo.processInfo.environment["SPARKGATE_TEST_SEED"].flatMap(UInt64.init)
            ?? UInt64.random(in: 0...UInt64.max)
        print("\(label) seed \(seed)")
        return (SplitMix64(seed: seed), seed)
    }
}
