/// What of an engine's log may reach a client (`launch.log_tail_in_errors`): the log is the tenant's own
/// output, so the engine's token (printed by a careless command line) and anything shaped like a credential
/// (long runs of hex, base64 or key material) are replaced before the text leaves the gateway.
public enum LogRedaction {
    public static let placeholder = "<redacted>"

    /// `text` with each of `secrets` and every credential-shaped run of 24 or more characters replaced.
    public static func redact(_ text: String, secrets: [String]) -> String {
        var out = text
        for secret in secrets where !secret.isEmpty {
            out = out.replacing(secret, with: placeholder)
        }
        var result = ""
        var run = ""
        func flush() {
            result += looksLikeCredential(run) ? placeholder : run
            run = ""
        }
        for character in out {
            if character.isASCII && (character.isLetter || character.isNumber || "+/=_-".contains(character)) {
                run.append(character)
            } else {
                flush()
                result.append(character)
            }
        }
        flush()
        return result
    }

    /// A run long enough to be a key or token, with both letters and digits (words and numbers are neither).
    static func looksLikeCredential(_ run: String) -> Bool {
        run.count >= 24 && run.contains(where: \.isNumber) && run.contains(where: \.isLetter)
    }
}
