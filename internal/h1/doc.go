// Package h1 parses HTTP/1.1 message heads (RFC 9112) and decodes and
// encodes chunked bodies, for switchboard's own HTTP/1.1 server loop and
// upstream client. It allocates nothing while parsing: the parsed Request
// and Response, their Fields and the ChunkedReader's trailers alias the
// caller's buffer (or the reader's own reusable one), so they are valid
// only as long as that buffer is left alone.
//
// It parses at least as strictly as net/http (http.ReadRequest plus the
// checks of http.Server, and http.ReadResponse) — a fuzz test holds it to
// that — and refuses outright the messages whose framing different
// parsers could read differently, which net/http re-frames instead.
//
// Refused in any head (status 400 unless noted):
//   - a line ending in a bare LF, or a CR not followed by LF (net/http
//     takes bare LF everywhere);
//   - obs-fold: a field line starting with SP or HTAB, also right after
//     the start line (net/http joins folded lines);
//   - a field name that is empty or not a token, and whitespace between
//     name and colon (net/http takes "Name : v" and keeps the space);
//   - a field value with a CTL other than HTAB, or DEL (NUL included);
//   - Content-Length and Transfer-Encoding together (net/http drops the
//     Content-Length and uses chunked framing);
//   - Content-Length that is not 1*DIGIT within int64: no sign, list,
//     inner whitespace or hex; OWS around it is trimmed, so
//     "Content-Length: 5 " is 5;
//   - more than one Content-Length field in a request, even with equal
//     values (net/http takes equal duplicates); a response may repeat an
//     identical value, as net/http and RFC 9110 §8.6 allow;
//   - Transfer-Encoding in more than one field, as a list
//     ("chunked, chunked", "gzip, chunked") or empty: 400; a single coding
//     other than chunked (ASCII case-insensitive): 501; any
//     Transfer-Encoding in an HTTP/1.0 message (net/http ignores it);
//   - a Trailer field naming Content-Length, Transfer-Encoding or Trailer
//     (net/http refuses that only when the body is chunked);
//   - a head longer than the limit, counted from the first byte of the
//     buffer through the CRLF that ends it: 431; more than MaxFields
//     field lines: 431 (net/http counts only bytes).
//
// Refused in a request line (method SP request-target SP HTTP-version CRLF):
//   - anything but single spaces between the three parts, an empty target,
//     a missing version (HTTP/0.9), a method that is not a token;
//   - a version other than HTTP/1.0 and HTTP/1.1: 505 if well formed
//     ("HTTP/1.2", "HTTP/2.0"; net/http serves HTTP/1.x for any x), else 400;
//   - more than two CRLFs before the request line (net/http's server skips
//     up to four CR or LF bytes, and only after a POST);
//   - a target with a CTL, SP or '#' (net/http takes '#'); "*" except with
//     OPTIONS; CONNECT with anything but host:port; absolute-form other
//     than http or https with a host, or with userinfo or an invalid port
//     (net/http takes any scheme); a bad percent-encoding in the path;
//     a host that is neither a reg-name without percent-encoding nor a
//     bracketed IPv6 address without a zone. Raw obs-text bytes and the
//     ASCII characters RFC 3986 leaves out ('"', '<', '|', ...) are
//     accepted, as net/http accepts them.
//   - an HTTP/1.1 request without Host, also CONNECT (net/http exempts
//     CONNECT); more than one Host; a Host that is not empty nor a valid
//     authority as above (net/http checks only its bytes); a Host that
//     differs, ignoring case, from an absolute-form or authority-form
//     target's authority (net/http uses the target and ignores Host).
//
// Refused in a status line (HTTP-version SP 3DIGIT [SP reason] CRLF):
// extra spaces, a status outside 100–999 or not three digits ("+12"
// passes net/http), a reason with a CTL other than HTAB, and versions
// other than HTTP/1.0 and HTTP/1.1.
//
// Connection is read as a comma-separated list of case-insensitive
// options: close, keep-alive and upgrade. What a field value means beyond
// framing and persistence is left to the caller.
package h1
