/// Extracts the token from `authorization` header values.
public enum BearerToken {
    /// The token of the single `authorization: Bearer <token>` header.
    public static func extract(from values: [Substring]) -> Result<Substring, AuthFailure> {
        guard let value = values.first else {
            return .failure(AuthFailure(.missing, "no bearer token: connect with sc://HOST:PORT/;use_ssl=true;token=<JWT>"))
        }
        guard values.count == 1 else {
            return .failure(AuthFailure(.malformed, "send exactly one authorization header, not \(values.count)"))
        }
        let trimmed = value.drop(while: { $0 == " " || $0 == "\t" })
        guard let space = trimmed.firstIndex(where: { $0 == " " || $0 == "\t" }) else {
            if trimmed.lowercased() == "bearer" {
                return .failure(AuthFailure(.missing, "the authorization header says 'Bearer' but carries no token"))
            }
            return .failure(AuthFailure(.malformed, "the authorization header must be 'Bearer <JWT>'"))
        }
        let scheme = trimmed[..<space]
        guard scheme.lowercased() == "bearer" else {
            return .failure(AuthFailure(.malformed, "authorization scheme '\(scheme.prefix(16))' is not accepted; use 'Bearer <JWT>'"))
        }
        let token = trimmed[space...].drop(while: { $0 == " " || $0 == "\t" })
        var end = token.endIndex
        while end > token.startIndex, token[token.index(before: end)] == " " || token[token.index(before: end)] == "\t" {
            end = token.index(before: end)
        }
        let result = token[..<end]
        guard !result.isEmpty else {
            return .failure(AuthFailure(.missing, "the authorization header says 'Bearer' but carries no token"))
        }
        guard !result.contains(where: { $0 == " " || $0 == "\t" }) else {
            return .failure(AuthFailure(.malformed, "the bearer token contains whitespace; send the JWT as one word"))
        }
        return .success(result)
    }
}
