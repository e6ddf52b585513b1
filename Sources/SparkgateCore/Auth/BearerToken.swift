/// Extracts the token from `authorization` header values.
public enum BearerToken {
    /// The token of the single `authorization: Bearer <token>` header.
    ///
    /// Works on UTF-8 bytes: it runs on every RPC, and Character-level string walking is several times slower.
    public static func extract(from values: [Substring]) -> Result<Substring, AuthFailure> {
        guard let value = values.first else {
            return .failure(AuthFailure(.missing, "no bearer token: connect with sc://HOST:PORT/;use_ssl=true;token=<JWT>"))
        }
        guard values.count == 1 else {
            return .failure(AuthFailure(.malformed, "send exactly one authorization header, not \(values.count)"))
        }
        let utf8 = value.utf8
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }
        var i = utf8.startIndex
        while i != utf8.endIndex && isSpace(utf8[i]) { i = utf8.index(after: i) }
        let schemeStart = i
        while i != utf8.endIndex && !isSpace(utf8[i]) { i = utf8.index(after: i) }
        let scheme = utf8[schemeStart..<i]
        let isBearer = scheme.count == 6 && zip(scheme, "bearer".utf8).allSatisfy { $0 | 0x20 == $1 }
        while i != utf8.endIndex && isSpace(utf8[i]) { i = utf8.index(after: i) }
        let tokenStart = i
        while i != utf8.endIndex && !isSpace(utf8[i]) { i = utf8.index(after: i) }
        let tokenEnd = i
        while i != utf8.endIndex && isSpace(utf8[i]) { i = utf8.index(after: i) }
        guard isBearer else {
            if scheme.isEmpty { return .failure(AuthFailure(.missing, "the authorization header is empty")) }
            if tokenStart == utf8.endIndex {
                return .failure(AuthFailure(.malformed, "the authorization header must be 'Bearer <JWT>'"))
            }
            return .failure(AuthFailure(.malformed, "authorization scheme '\(Substring(scheme).prefix(16))' is not accepted; use 'Bearer <JWT>'"))
        }
        guard tokenStart != tokenEnd else {
            return .failure(AuthFailure(.missing, "the authorization header says 'Bearer' but carries no token"))
        }
        guard i == utf8.endIndex else {
            return .failure(AuthFailure(.malformed, "the bearer token contains whitespace; send the JWT as one word"))
        }
        return .success(Substring(utf8[tokenStart..<tokenEnd]))
    }
}
