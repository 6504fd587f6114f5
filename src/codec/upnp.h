/* UPnP IGD port mapping as pure formats (issue 26; UPnP Device
 * Architecture 1.1, WANIPConnection:1/2): the SSDP search and its answer,
 * URLs, the HTTP/1.1 responses of the gateway, the device description's
 * connection service and the SOAP control requests and answers. Only
 * what natter asks is encoded; every decoder is bounded by the limits
 * below and accepts only an answer to that question. Nothing here is an
 * XML parser: a small tag scanner finds elements by their local name
 * (the part after any namespace prefix), which is all an IGD's
 * description and SOAP answers need. Whether an answer is from the
 * gateway at all (its address, LOCATION's host) and what it claims are
 * checked by the caller (client/upnp.c) with nt_upnp_url_at. */
#ifndef NT_UPNP_CODEC_H
#define NT_UPNP_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define NT_SSDP_PORT 1900
#define NT_SSDP_GROUP "239.255.255.250"

/* Limits. */
#define NT_SSDP_MAX_LEN 2048       /* an SSDP answer read (longer: dropped) */
#define NT_UPNP_URL_MAX 256        /* LOCATION, URLBase, controlURL */
#define NT_UPNP_TYPE_MAX 128       /* a serviceType */
#define NT_UPNP_VALUE_MAX 64       /* a SOAP answer's value we read */
#define NT_HTTP_RESPONSE_MAX 65536 /* an HTTP response, headers and body */
#define NT_HTTP_HEADER_MAX 8192    /* its status line and headers */
#define NT_UPNP_REQUEST_MAX 2048   /* a request we build */

/* The device types searched for, IGD:1 and IGD:2. */
#define NT_UPNP_IGD1 "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
#define NT_UPNP_IGD2 "urn:schemas-upnp-org:device:InternetGatewayDevice:2"

/* An SSDP M-SEARCH for |st| (MX 1) into |buf| (|cap| bytes). Returns the
 * length, 0 when it does not fit. */
size_t nt_ssdp_encode_search(char *buf, size_t cap, const char *st);

/* An SSDP answer (HTTP/1.1 200 over UDP) for an InternetGatewayDevice
 * (ST :1 or :2): returns 1 and LOCATION (one, printable ASCII without
 * spaces), NUL-terminated, in |location|
 * (NT_UPNP_URL_MAX bytes), else 0. Headers are case-insensitive; the
 * answer must be at most NT_SSDP_MAX_LEN bytes. */
int nt_ssdp_parse_answer(const char *buf, size_t len, char *location);

/* An http:// URL with a dotted-quad IPv4 host (no names: nothing is
 * resolved), a port (default 80, 1..65535) and an absolute path of
 * printable characters without space, quote or angle brackets. */
typedef struct nt_upnp_url {
  uint8_t ip[4];
  uint16_t port;
  char path[NT_UPNP_URL_MAX]; /* "/..." */
} nt_upnp_url;

/* Parses |len| bytes of |text|. Returns 1, else 0. */
int nt_upnp_url_parse(const char *text, size_t len, nt_upnp_url *out);

/* 1 when |u| is at the gateway |gw| (4 bytes): the only host an SSDP
 * answer or a description may send us to. */
int nt_upnp_url_at(const nt_upnp_url *u, const uint8_t gw[4]);

/* The device description (|len| bytes of XML, at most
 * NT_HTTP_RESPONSE_MAX): the first service of type WANIPConnection:1 or
 * :2 or WANPPPConnection:1, its type (NUL-terminated, NT_UPNP_TYPE_MAX
 * bytes) in |type| and its controlURL in |control|, resolved against
 * URLBase, or |location| when there is none (a relative URL keeps the
 * host and port). Returns 1, else 0. */
int nt_upnp_find_control(const char *xml, size_t len,
                         const nt_upnp_url *location, nt_upnp_url *control,
                         char *type);

/* A GET of |u| (HTTP/1.1, Connection: close). Returns the length, 0 when
 * it does not fit |cap|. */
size_t nt_upnp_encode_get(char *buf, size_t cap, const nt_upnp_url *u);

/* A SOAP POST of |action| of service |type| to |control|, with |nargs|
 * arguments (names and values, escaped by the caller: ours are numbers,
 * addresses and "UDP"). Returns the length, 0 when it does not fit. */
size_t nt_upnp_encode_soap(char *buf, size_t cap, const nt_upnp_url *control,
                           const char *type, const char *action,
                           const char *const *names, const char *const *values,
                           size_t nargs);

/* An HTTP/1.x response in |buf| (|len| bytes read so far; |eof|: the
 * server closed). Returns 0 when more is needed, -1 when it is malformed
 * or over the limits, 1 when complete: the status in |*status| and the
 * body in [*body, *body + *body_len) (Content-Length, chunked -- decoded
 * in place --, or up to the close). */
int nt_http_parse_response(char *buf, size_t len, int eof, int *status,
                           char **body, size_t *body_len);

/* A SOAP answer to |action| (|status| and |body| as from
 * nt_http_parse_response): NT_UPNP_SOAP_OK when status 200 and the body
 * holds <actionResponse> (then |field|, when not NULL, is copied,
 * NUL-terminated, into |value| (NT_UPNP_VALUE_MAX bytes): "" when absent
 * or empty, printable ASCII only, else the answer is bad); the UPnP error
 * code (1..999) when status 500 and a UPnPError's errorCode; else
 * NT_UPNP_SOAP_BAD. */
#define NT_UPNP_SOAP_OK 0
#define NT_UPNP_SOAP_BAD (-1)
int nt_upnp_soap_result(int status, const char *body, size_t len,
                        const char *action, const char *field, char *value);

/* UPnP error codes acted upon (WANIPConnection:2 §2.4). */
#define NT_UPNP_ERR_CONFLICT 718       /* ConflictInMappingEntry */
#define NT_UPNP_ERR_SAME_PORT 724      /* SamePortValuesRequired */
#define NT_UPNP_ERR_PERMANENT_ONLY 725 /* OnlyPermanentLeasesSupported */

#endif
