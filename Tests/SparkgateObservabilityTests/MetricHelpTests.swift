import SparkgateObservability
import Testing

@Suite("Metric help text")
struct MetricHelpTests {
    @Test("a HELP line goes before the TYPE line of each known metric; other lines stay as they were")
    func annotate() {
        let exposition = """
            # TYPE sparkgate_rpcs_total counter
            sparkgate_rpcs_total{method="Config",team="a",code="OK"} 3
            # TYPE other_metric gauge
            other_metric 1

            """
        let out = String(decoding: MetricHelp.annotate(Array(exposition.utf8)), as: UTF8.self)
        #expect(
            out == """
                # HELP sparkgate_rpcs_total Finished RPCs by method, team and gRPC status code.
                # TYPE sparkgate_rpcs_total counter
                sparkgate_rpcs_total{method="Config",team="a",code="OK"} 3
                # TYPE other_metric gauge
                other_metric 1

                """)
    }

    @Test("empty and unterminated expositions pass through")
    func edges() {
        #expect(MetricHelp.annotate([]) == [])
        #expect(MetricHelp.annotate(Array("x 1".utf8)) == Array("x 1".utf8))
    }

    @Test("help texts are single lines without backslashes, as the text format requires unescaped")
    func texts() {
        for (name, text) in MetricHelp.texts {
            #expect(name.hasPrefix("sparkgate_"))
            #expect(!text.contains("\n") && !text.contains("\\") && !text.isEmpty)
        }
    }
}
