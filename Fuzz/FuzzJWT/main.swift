import SparkgateCore

/// libFuzzer target: the bearer-token extractor, the compact JWT parser and base64url on arbitrary text.
/// They refuse with a reason or parse; parsing never traps, and a refusal never echoes the token.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    _ = BearerToken.extract(from: [Substring(text)])
    switch CompactJWT.parse(Substring(text), maxBytes: 1 << 16) {
    case .success(let jwt):
        _ = ClaimsPolicy(issuer: "i", audience: "a").verify(jwt.claims, now: 1_700_000_000)
    case .failure(let failure):
        if size >= 16 {
            precondition(!containsBytes(Array(failure.message.utf8), Array(text.utf8)), "a refusal echoed the token")
        }
    }
    if let decoded = Base64URL.decode(Array(text.utf8)) {
        precondition(
            Base64URL.decode(Array(Base64URL.encode(decoded).utf8)) == decoded, "base64url does not round-trip")
    }
    return 0
}

/// Byte-level substring search: `String.contains` compares by Unicode rules, which is not the question here.
func containsBytes(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, needle.count <= haystack.count else { return needle.isEmpty }
    return (0...(haystack.count - needle.count)).contains { start in
        haystack[start..<(start + needle.count)].elementsEqual(needle)
    }
}
