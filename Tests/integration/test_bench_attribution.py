"""The benchmark's charging rule (`Benchmarks/bench/attribution.py`): a sample goes to the innermost frame of a
named module, so runtime work lands on the code that caused it; the kernel keeps its own."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "Benchmarks", "bench"))
import attribution  # noqa: E402

CORE = "$s13SparkgateCore16CallStateMachineV6handle_3now4intoyAA0C5EventOyxq_G_SdSayAA0C6ActionOyxq_GGztF"
PROXY = "$s15SparkgateServer9ProxyCallC6handleyy0A4Core0D5EventOy8NIOHPACK12HPACKHeadersV0A7Framing11GRPCMessageVGF"
POSIX = "$s8NIOPosix19SelectableEventLoopC3runyyKF"
SCRIPT = f"""NIO-ELT-1-#2
\t          4721e6 swift_retain (/usr/lib/swift/linux/libswiftCore.so)
\t          eb719b $sSD6filterySDyxq_GSbx3key_q_5valuet_tKXEKF (/usr/lib/swift/linux/libswiftCore.so)
\t          eb8599 {CORE} (/tmp/sg-main)
\t          100e65 {PROXY} (/tmp/sg-main)

NIO-ELT-1-#2
\tffffffff813aecd3 finish_task_switch.isra.0 ([kernel.kallsyms])
\t          100e65 {POSIX} (/tmp/sg-main)

NIO-ELT-1-#2
\t            7f00 nghttp2_session_mem_recv (/usr/lib/x86_64-linux-gnu/libnghttp2.so.14.24.1)
\t          100e65 {PROXY} (/tmp/sg-main)

NIO-ELT-1-#2
\t          4721e6 malloc (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t          eb719b start_thread (/usr/lib/x86_64-linux-gnu/libc.so.6)
"""


def test_runtime_work_is_charged_to_the_code_that_caused_it():
    stacks = list(attribution.parse(SCRIPT))
    assert len(stacks) == 4
    modules, functions = attribution.attribute(stacks)
    assert dict((name, share) for share, name in modules) == {
        "SparkgateCore": 0.25, "kernel": 0.25, "libnghttp2": 0.25, "unattributed": 0.25}
    # The standard library's frame (`$ss…`) is passed over like the runtime's: the retain is the machine's.
    assert functions == [(0.25, CORE)]


def test_modules_are_read_from_swift_symbols_and_libraries():
    assert attribution.module_of(PROXY, "/tmp/sg-main") == "SparkgateServer"
    assert attribution.module_of(POSIX, "/tmp/sg-main") == "NIOPosix"
    assert attribution.module_of("CNIOBoringSSL_aes_gcm_enc_update", "/tmp/sg-main") == "BoringSSL"
    assert attribution.module_of("$sSa6appendyyxnF", "/usr/lib/swift/linux/libswiftCore.so") is None
    assert attribution.module_of("swift_release", "/usr/lib/swift/linux/libswiftCore.so") is None
