/* libFuzzer target: what a UPnP gateway (or anyone on the LAN) sends us
 * (src/codec/upnp.c): an SSDP answer, an HTTP response (decoded in place
 * on a copy), the device description's control URL and SOAP answers, and
 * URLs. Whatever is accepted must be within the header's limits, and a
 * URL accepted must name an IPv4 host and a clean path. A service type
 * is matched without regard to case (devices differ) and echoed back as
 * the device spelled it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/upnp.h"

static void url_ok(const nt_upnp_url *u) {
  size_t n = strnlen(u->path, NT_UPNP_URL_MAX);
  if (n == 0 || n >= NT_UPNP_URL_MAX || u->path[0] != '/' || u->port == 0) {
    abort();
  }
  for (size_t i = 0; i < n; i++) {
    if (u->path[i] <= ' ' || u->path[i] >= 0x7f || u->path[i] == '"' ||
        u->path[i] == '<' || u->path[i] == '>') {
      abort();
    }
  }
}

static void value_ok(const char *v) {
  size_t n = strnlen(v, NT_UPNP_VALUE_MAX);
  if (n >= NT_UPNP_VALUE_MAX) {
    abort();
  }
  for (size_t i = 0; i < n; i++) {
    if (v[i] < ' ' || v[i] > '~') {
      abort();
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  char loc[NT_UPNP_URL_MAX], type[NT_UPNP_TYPE_MAX], v[NT_UPNP_VALUE_MAX];
  nt_upnp_url base, u, ctl;
  if (nt_ssdp_parse_answer(text, size, loc)) {
    if (size > NT_SSDP_MAX_LEN || strnlen(loc, NT_UPNP_URL_MAX) == 0 ||
        strnlen(loc, NT_UPNP_URL_MAX) >= NT_UPNP_URL_MAX) {
      abort();
    }
  }
  if (nt_upnp_url_parse(text, size, &u)) {
    url_ok(&u);
  }
  memset(&base, 0, sizeof(base));
  base.ip[0] = 198;
  base.ip[1] = 18;
  base.ip[3] = 1;
  base.port = 5000;
  memcpy(base.path, "/rootDesc.xml", 14);
  if (nt_upnp_find_control(text, size, &base, &ctl, type)) {
    url_ok(&ctl);
    if (strnlen(type, NT_UPNP_TYPE_MAX) >= NT_UPNP_TYPE_MAX ||
        strcasestr(type, "Connection:") == NULL) {
      abort();
    }
  }
  char *copy = malloc(size ? size : 1);
  if (!copy) {
    return 0;
  }
  memcpy(copy, data, size);
  for (int eof = 0; eof < 2; eof++) {
    int status;
    char *body;
    size_t blen;
    memcpy(copy, data, size);
    if (nt_http_parse_response(copy, size, eof, &status, &body, &blen) == 1) {
      if (status < 100 || status > 599 || body < copy ||
          body + blen > copy + size) {
        abort();
      }
      int r = nt_upnp_soap_result(status, body, blen, "GetExternalIPAddress",
                                  "NewExternalIPAddress", v);
      if (r == NT_UPNP_SOAP_OK) {
        value_ok(v);
      } else if (r != NT_UPNP_SOAP_BAD && (r < 1 || r > 999)) {
        abort();
      }
    }
  }
  free(copy);
  int r = nt_upnp_soap_result(200, text, size, "AddPortMapping", NULL, NULL);
  if (r != NT_UPNP_SOAP_OK && r != NT_UPNP_SOAP_BAD) {
    abort();
  }
  r = nt_upnp_soap_result(500, text, size, "AddPortMapping", NULL, NULL);
  if (r != NT_UPNP_SOAP_BAD && (r < 1 || r > 999)) {
    abort();
  }
  return 0;
}
