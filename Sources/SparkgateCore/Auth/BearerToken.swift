/// Extracts the token from `authorization` header values, or from `authentication`, the name Spark's JVM
/// client 4.0.0 to 4.0.4 and 4.1.0 to 4.1.3 sends it under.
public enum BearerToken {
    /// The token of a request: from its single `authorization: Bearer <token>` header, or its single
    /// `authentication` header; both may come only with the same token.
    public static func extract(from head: RequestHead) -> Result<Substring, AuthFailure> {
        switch (head.authorization.isEmpty, head.authentication.isEmpty) {
        case (false, true), (true, true):
            return extract(from: head.authorization)
        case (true, false):
            return extract(from: head.authentication, header: "authentication")
        case (false, false):
            let authorization = extract(from: head.authorization)
            guard case .success(let token) = authorization,
                case .success(let other) = extract(from: head.authentication, header: "authentication")
            else {
                return .failure(
                    AuthFailure(
                        .malformed,
                        "the request carries both an authorization and an authentication header, and one of them is not 'Bearer <JWT>'; send one"
                    ))
            }
            guard token == other else {
                return .failure(
                    AuthFailure(
                        .malformed,
                        "the authorization and authentication headers carry different tokens; send one of them"))
            }
            return authorization
        }
    }

    /// The bytes of every token header value, for the size limit.
    public static func size(of head: RequestHead) -> Int {
        // Summed one list after the other: concatenating them would allocate on every call.
        head.authorization.reduce(0) { $0 + $1.utf8.count } + head.authentication.reduce(0) { $0 + $1.utf8.count }
    }

    /// The token of the single `<header>: Bearer <token>` header.
    ///
    /// Works on UTF-8 bytes: it runs on every RPC, and Character-level string walking is several times slower.
    public static func extract(
        from values: [Substring], header: StaticString = "authorization"
    ) -> Result<Substring, AuthFailure> {
        guard let value = values.first else {
            return .failure(
                AuthFailure(.missing, "no bearer token: connect with sc://HOST:PORT/;use_ssl=true;token=<JWT>"))
        }
        guard values.count == 1 else {
            return .failure(AuthFailure(.malformed, "send exactly one \(header) header, not \(values.count)"))
        }
        // One pass over contiguous bytes: index arithmetic on a Substring's UTF8View costs more than the scan.
        var owned = value
        let (schemeStart, schemeEnd, tokenStart, tokenEnd, end, count, isBearer) = owned.withUTF8 { bytes in
            func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }
            var i = 0
            let n = bytes.count
            while i < n && isSpace(bytes[i]) { i += 1 }
            let schemeStart = i
            while i < n && !isSpace(bytes[i]) { i += 1 }
            let schemeEnd = i
            let isBearer =
                schemeEnd - schemeStart == 6
                && zip(bytes[schemeStart..<schemeEnd], "bearer".utf8).allSatisfy { $0 | 0x20 == $1 }
            while i < n && isSpace(bytes[i]) { i += 1 }
            let tokenStart = i
            while i < n && !isSpace(bytes[i]) { i += 1 }
            let tokenEnd = i
            while i < n && isSpace(bytes[i]) { i += 1 }
            return (schemeStart, schemeEnd, tokenStart, tokenEnd, i, n, isBearer)
        }
        let utf8 = owned.utf8
        let scheme = utf8[
            utf8.index(utf8.startIndex, offsetBy: schemeStart)..<utf8.index(utf8.startIndex, offsetBy: schemeEnd)]
        guard isBearer else {
            if scheme.isEmpty { return .failure(AuthFailure(.missing, "the \(header) header is empty")) }
            if tokenStart == count {
                return .failure(AuthFailure(.malformed, "the \(header) header must be 'Bearer <JWT>'"))
            }
            return .failure(
                AuthFailure(
                    .malformed, "\(header) scheme '\(Substring(scheme).prefix(16))' is not accepted; use 'Bearer <JWT>'"
                ))
        }
        guard tokenStart != tokenEnd else {
            return .failure(AuthFailure(.missing, "the \(header) header says 'Bearer' but carries no token"))
        }
        guard end == count else {
            return .failure(AuthFailure(.malformed, "the bearer token contains whitespace; send the JWT as one word"))
        }
        return .success(
            Substring(
                utf8[
                    utf8.index(utf8.startIndex, offsetBy: tokenStart)..<utf8.index(utf8.startIndex, offsetBy: tokenEnd)]
            ))
    }
}
