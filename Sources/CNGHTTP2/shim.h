#ifndef CNGHTTP2_SHIM_H
#define CNGHTTP2_SHIM_H
// libnghttp2 (Debian's libnghttp2-dev): the HTTP/2 framing, HPACK and flow control behind Sparkgate's
// connections.
#include <nghttp2/nghttp2.h>
#endif
