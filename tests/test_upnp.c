/* UPnP IGD port mapping (issue 26): the pure formats of src/codec/upnp.c
 * (SSDP, URLs and the gateway check, HTTP responses, the description's
 * control URL, SOAP requests and answers) and the method's place in the
 * control messages. */
#include <stdio.h>
#include <stdlib.h>

#include "codec/control.h"
#include "codec/portmap.h"
#include "codec/upnp.h"
#include "codec/wire.h"
#include "test.h"
#include "test_addrs.h"
#include "test_control_rt.h"

static const uint8_t gw[4] = {198, 18, 2, 1};

static void test_ssdp(void) {
  char buf[512], loc[NT_UPNP_URL_MAX];
  size_t n = nt_ssdp_encode_search(buf, sizeof(buf), NT_UPNP_IGD1);
  CHECK(n > 0 && n == strlen(buf));
  CHECK_STR_CONTAINS(buf, "M-SEARCH * HTTP/1.1\r\n");
  CHECK_STR_CONTAINS(buf, "MAN: \"ssdp:discover\"\r\n");
  CHECK_STR_CONTAINS(buf, "ST: " NT_UPNP_IGD1 "\r\n");
  CHECK(nt_ssdp_encode_search(buf, 20, NT_UPNP_IGD1) == 0);

  /* miniupnpd's answer, headers in any case */
  const char *ok = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n"
                   "st: urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\n"
                   "USN: uuid:x\r\nEXT:\r\n"
                   "Location:  http://198.18.2.1:5000/rootDesc.xml \r\n\r\n";
  CHECK(nt_ssdp_parse_answer(ok, strlen(ok), loc) == 1);
  CHECK(strcmp(loc, "http://198.18.2.1:5000/rootDesc.xml") == 0);

  /* not an IGD, not 200, no LOCATION, two LOCATIONs, truncated */
  const char *bad[] = {
      "HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\nLOCATION: http://1.2.3.4/\r\n"
      "\r\n",
      "HTTP/1.1 404 Not Found\r\nST: " NT_UPNP_IGD1 "\r\n"
      "LOCATION: http://1.2.3.4/\r\n\r\n",
      "HTTP/1.1 200 OK\r\nST: " NT_UPNP_IGD1 "\r\n\r\n",
      "HTTP/1.1 200 OK\r\nST: " NT_UPNP_IGD1 "\r\nLOCATION: http://1.2.3.4/\r\n"
      "LOCATION: http://1.2.3.5/\r\n\r\n",
      "HTTP/1.1 200 OK\r\nST: " NT_UPNP_IGD1 "\r\nLOCATION: http://1.2.3.4/",
      "NOTIFY * HTTP/1.1\r\nNT: " NT_UPNP_IGD1
      "\r\nLOCATION: http://1.2.3.4/\r\n"
      "\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    CHECK(nt_ssdp_parse_answer(bad[i], strlen(bad[i]), loc) == 0);
    CHECK(loc[0] == '\0');
  }
  /* over the limit */
  char *big = malloc(NT_SSDP_MAX_LEN + 1);
  memset(big, 'x', NT_SSDP_MAX_LEN + 1);
  memcpy(big, ok, strlen(ok) - 2); /* then x...: a header line too long */
  memcpy(big + NT_SSDP_MAX_LEN - 3, "\r\n\r\n", 4);
  CHECK(nt_ssdp_parse_answer(big, NT_SSDP_MAX_LEN + 1, loc) == 0);
  CHECK(nt_ssdp_parse_answer(ok, strlen(ok), loc) == 1);
  free(big);
}

static void test_url(void) {
  nt_upnp_url u;
  const char *t = "http://198.18.2.1:5000/rootDesc.xml";
  CHECK(nt_upnp_url_parse(t, strlen(t), &u) == 1);
  CHECK(memcmp(u.ip, gw, 4) == 0 && u.port == 5000);
  CHECK(strcmp(u.path, "/rootDesc.xml") == 0);
  CHECK(nt_upnp_url_at(&u, gw));
  t = "HTTP://198.18.2.1";
  CHECK(nt_upnp_url_parse(t, strlen(t), &u) == 1);
  CHECK(u.port == 80 && strcmp(u.path, "/") == 0);
  t = "http://203.0.113.2:5000/rootDesc.xml";
  CHECK(nt_upnp_url_parse(t, strlen(t), &u) == 1);
  CHECK(!nt_upnp_url_at(&u, gw)); /* another host: refused by the caller */
  const char *bad[] = {
      "https://198.18.2.1/",   "http://router.lan/",
      "http://198.18.2.01/",   "http://198.18.2/",
      "http://198.18.2.1.5/",  "http://256.1.1.1/",
      "http://198.18.2.1:0/",  "http://198.18.2.1:65536/",
      "http://198.18.2.1:/x",  "http://198.18.2.1x/",
      "http://198.18.2.1/a b", "http://198.18.2.1/a\"b",
      "http://[::1]:5000/",    "http://198.18.2.1@203.0.113.2/",
      "ftp://198.18.2.1/",     "",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    CHECK(nt_upnp_url_parse(bad[i], strlen(bad[i]), &u) == 0);
  }
  char lng[NT_UPNP_URL_MAX + 10];
  snprintf(lng, sizeof(lng), "http://198.18.2.1/");
  memset(lng + 18, 'a', sizeof(lng) - 19);
  lng[sizeof(lng) - 1] = '\0';
  CHECK(nt_upnp_url_parse(lng, strlen(lng), &u) == 0);
}

static const char desc[] =
    "<?xml version=\"1.0\"?>\n<root xmlns=\"urn:schemas-upnp-org:device-1-0\">"
    "<device><serviceList><service><serviceType>urn:schemas-upnp-org:service:"
    "Layer3Forwarding:1</serviceType><controlURL>/ctl/L3F</controlURL>"
    "</service></serviceList><deviceList><device><serviceList>"
    "<service>\n <serviceType> urn:schemas-upnp-org:service:WANIPConnection:2"
    " </serviceType>\n <controlURL>/ctl/IPConn</controlURL>\n</service>"
    "</serviceList></device></deviceList></device></root>";

static void test_description(void) {
  nt_upnp_url loc, ctl;
  char type[NT_UPNP_TYPE_MAX], buf[1024];
  const char *t = "http://198.18.2.1:5000/rootDesc.xml";
  CHECK(nt_upnp_url_parse(t, strlen(t), &loc));
  CHECK(nt_upnp_find_control(desc, strlen(desc), &loc, &ctl, type) == 1);
  CHECK(strcmp(type, "urn:schemas-upnp-org:service:WANIPConnection:2") == 0);
  CHECK(memcmp(ctl.ip, gw, 4) == 0 && ctl.port == 5000);
  CHECK(strcmp(ctl.path, "/ctl/IPConn") == 0);

  /* URLBase, a relative URL without '/', a namespace prefix, PPP */
  snprintf(buf, sizeof(buf),
           "<d:root><d:URLBase>http://198.18.2.1:49000</d:URLBase>"
           "<d:service><d:serviceType>urn:schemas-upnp-org:service:"
           "WANPPPConnection:1</d:serviceType><d:controlURL>upnp/control/ppp"
           "</d:controlURL></d:service></d:root>");
  CHECK(nt_upnp_find_control(buf, strlen(buf), &loc, &ctl, type) == 1);
  CHECK(ctl.port == 49000 && strcmp(ctl.path, "/upnp/control/ppp") == 0);

  /* an absolute control URL at another host: parsed, for the caller to
   * refuse with nt_upnp_url_at */
  snprintf(buf, sizeof(buf),
           "<service><serviceType>urn:schemas-upnp-org:service:"
           "WANIPConnection:1</serviceType><controlURL>http://203.0.113.9:80/c"
           "</controlURL></service>");
  CHECK(nt_upnp_find_control(buf, strlen(buf), &loc, &ctl, type) == 1);
  CHECK(!nt_upnp_url_at(&ctl, gw));

  /* no connection service; unclosed tags; a bad URL; an empty one */
  const char *bad[] = {
      "<root><service><serviceType>urn:schemas-upnp-org:service:"
      "Layer3Forwarding:1</serviceType><controlURL>/x</controlURL></service>",
      "<root><service><serviceType>urn:schemas-upnp-org:service:"
      "WANIPConnection:1</serviceType><controlURL>/x",
      "<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1"
      "</serviceType><controlURL>/a b</controlURL></service>",
      "<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1"
      "</serviceType><controlURL/></service>",
      "<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1"
      "</serviceType></service>",
      "<<<<>>>></service><service",
      "",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    CHECK(nt_upnp_find_control(bad[i], strlen(bad[i]), &loc, &ctl, type) == 0);
    CHECK(type[0] == '\0');
  }
}

static void test_requests(void) {
  char buf[NT_UPNP_REQUEST_MAX + 512];
  nt_upnp_url ctl;
  const char *t = "http://198.18.2.1:5000/ctl/IPConn";
  CHECK(nt_upnp_url_parse(t, strlen(t), &ctl));
  CHECK(nt_upnp_encode_get(buf, sizeof(buf), &ctl) > 0);
  CHECK_STR_CONTAINS(buf, "GET /ctl/IPConn HTTP/1.1\r\nHost: 198.18.2.1:5000"
                          "\r\nConnection: close\r\n\r\n");
  const char *names[] = {"NewExternalPort", "NewProtocol"};
  const char *values[] = {"4000", "UDP"};
  size_t n = nt_upnp_encode_soap(
      buf, sizeof(buf), &ctl, "urn:schemas-upnp-org:service:WANIPConnection:1",
      "AddPortMapping", names, values, 2);
  CHECK(n > 0 && n == strlen(buf));
  CHECK_STR_CONTAINS(buf, "POST /ctl/IPConn HTTP/1.1\r\n");
  CHECK_STR_CONTAINS(buf, "SOAPAction: \"urn:schemas-upnp-org:service:"
                          "WANIPConnection:1#AddPortMapping\"\r\n");
  CHECK_STR_CONTAINS(buf, "<NewExternalPort>4000</NewExternalPort>"
                          "<NewProtocol>UDP</NewProtocol>");
  /* Content-Length is the body's */
  const char *body = strstr(buf, "\r\n\r\n") + 4;
  char cl[64];
  snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", strlen(body));
  CHECK_STR_CONTAINS(buf, cl);
  CHECK(nt_upnp_encode_soap(buf, 100, &ctl, "t", "A", names, values, 2) == 0);
}

static int parse(const char *text, int eof, int *status, char *copy,
                 char **body, size_t *blen) {
  size_t len = strlen(text);
  memcpy(copy, text, len + 1);
  return nt_http_parse_response(copy, len, eof, status, body, blen);
}

static void test_http(void) {
  char copy[2048], *body;
  size_t blen;
  int status;
  const char *cl = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  CHECK(parse(cl, 0, &status, copy, &body, &blen) == 1);
  CHECK(status == 200 && blen == 5 && memcmp(body, "hello", 5) == 0);
  /* not all there yet; cut short by the close */
  const char *part = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello";
  CHECK(parse(part, 0, &status, copy, &body, &blen) == 0);
  CHECK(parse(part, 1, &status, copy, &body, &blen) == -1);
  CHECK(parse("HTTP/1.1 200 OK\r\nConte", 0, &status, copy, &body, &blen) == 0);
  /* up to the close */
  const char *close = "HTTP/1.0 500 Internal\r\nServer: x\r\n\r\nabc";
  CHECK(parse(close, 0, &status, copy, &body, &blen) == 0);
  CHECK(parse(close, 1, &status, copy, &body, &blen) == 1);
  CHECK(status == 500 && blen == 3);
  /* chunked, decoded in place */
  const char *ch = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  CHECK(parse(ch, 0, &status, copy, &body, &blen) == 1);
  CHECK(blen == 5 && memcmp(body, "abcde", 5) == 0);
  const char *ch_part = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "3\r\nabc\r\n";
  CHECK(parse(ch_part, 0, &status, copy, &body, &blen) == 0);
  CHECK(parse(ch_part, 1, &status, copy, &body, &blen) == -1);
  const char *bad[] = {
      "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n",
      "HTTP/2 200 OK\r\n\r\n",
      "HTTP/1.1 2000 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
      "SSH-2.0-x\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    CHECK(parse(bad[i], 1, &status, copy, &body, &blen) == -1);
  }
  /* headers that never end */
  char *big = malloc(NT_HTTP_HEADER_MAX + 10);
  memset(big, 'x', NT_HTTP_HEADER_MAX + 10);
  CHECK(nt_http_parse_response(big, NT_HTTP_HEADER_MAX + 10, 0, &status, &body,
                               &blen) == -1);
  free(big);
}

static void test_soap(void) {
  char v[NT_UPNP_VALUE_MAX], buf[512];
  const char *ok =
      "<?xml version=\"1.0\"?><s:Envelope><s:Body>"
      "<u:GetExternalIPAddressResponse xmlns:u=\"x\"><NewExternalIPAddress>"
      "203.0.113.2</NewExternalIPAddress></u:GetExternalIPAddressResponse>"
      "</s:Body></s:Envelope>";
  CHECK(nt_upnp_soap_result(200, ok, strlen(ok), "GetExternalIPAddress",
                            "NewExternalIPAddress", v) == NT_UPNP_SOAP_OK);
  CHECK(strcmp(v, "203.0.113.2") == 0);
  /* miniupnpd on a reserved WAN address: an empty address */
  const char *empty = "<s:Envelope><s:Body><u:GetExternalIPAddressResponse>"
                      "<NewExternalIPAddress></NewExternalIPAddress>"
                      "</u:GetExternalIPAddressResponse></s:Body>"
                      "</s:Envelope>";
  CHECK(nt_upnp_soap_result(200, empty, strlen(empty), "GetExternalIPAddress",
                            "NewExternalIPAddress", v) == NT_UPNP_SOAP_OK);
  CHECK(v[0] == '\0');
  const char *added = "<s:Envelope><s:Body><u:AddPortMappingResponse "
                      "xmlns:u=\"x\"/></s:Body></s:Envelope>";
  CHECK(nt_upnp_soap_result(200, added, strlen(added), "AddPortMapping", NULL,
                            NULL) == NT_UPNP_SOAP_OK);
  /* the answer to another action */
  CHECK(nt_upnp_soap_result(200, added, strlen(added), "DeletePortMapping",
                            NULL, NULL) == NT_UPNP_SOAP_BAD);
  /* miniupnpd's refusal */
  const char *err =
      "<s:Envelope><s:Body><s:Fault><faultcode>s:Client</faultcode>"
      "<faultstring>UPnPError</faultstring><detail><UPnPError xmlns=\"urn:"
      "schemas-upnp-org:control-1-0\"><errorCode>501</errorCode>"
      "<errorDescription>ActionFailed</errorDescription></UPnPError></detail>"
      "</s:Fault></s:Body></s:Envelope>";
  CHECK(nt_upnp_soap_result(500, err, strlen(err), "AddPortMapping", NULL,
                            NULL) == 501);
  snprintf(buf, sizeof(buf),
           "<UPnPError><errorCode> 718 </errorCode></UPnPError>");
  CHECK(nt_upnp_soap_result(500, buf, strlen(buf), "AddPortMapping", NULL,
                            NULL) == NT_UPNP_ERR_CONFLICT);
  const char *bad_err[] = {
      "<UPnPError><errorCode>0</errorCode></UPnPError>",
      "<UPnPError><errorCode>1000</errorCode></UPnPError>",
      "<UPnPError><errorCode>7x</errorCode></UPnPError>",
      "<UPnPError><errorCode>718",
      "<errorCode>718</errorCode>",
  };
  for (size_t i = 0; i < sizeof(bad_err) / sizeof(bad_err[0]); i++) {
    CHECK(nt_upnp_soap_result(500, bad_err[i], strlen(bad_err[i]), "A", NULL,
                              NULL) == NT_UPNP_SOAP_BAD);
  }
  /* a 500 without UPnPError, a 200 that says nothing, an overlong or
   * unprintable value */
  CHECK(nt_upnp_soap_result(500, ok, strlen(ok), "GetExternalIPAddress",
                            "NewExternalIPAddress", v) == NT_UPNP_SOAP_BAD);
  CHECK(nt_upnp_soap_result(200, "<x/>", 4, "GetExternalIPAddress",
                            "NewExternalIPAddress", v) == NT_UPNP_SOAP_BAD);
  char lng[512];
  snprintf(lng, sizeof(lng),
           "<u:GetExternalIPAddressResponse><NewExternalIPAddress>%0100d"
           "</NewExternalIPAddress></u:GetExternalIPAddressResponse>",
           0);
  CHECK(nt_upnp_soap_result(200, lng, strlen(lng), "GetExternalIPAddress",
                            "NewExternalIPAddress", v) == NT_UPNP_SOAP_BAD);
  const char *ctl = "<GetExternalIPAddressResponse><NewExternalIPAddress>1\x01"
                    "</NewExternalIPAddress></GetExternalIPAddressResponse>";
  CHECK(nt_upnp_soap_result(200, ctl, strlen(ctl), "GetExternalIPAddress",
                            "NewExternalIPAddress", v) == NT_UPNP_SOAP_BAD);
}

static void test_method(void) {
  nt_control in, out;
  CHECK(strcmp(nt_portmap_method_name(NT_PORTMAP_UPNP), "UPnP") == 0);
  memset(&in, 0, sizeof(in));
  in.type = NT_CONTROL_INTRODUCTION;
  snprintf(in.u.introduction.name, sizeof(in.u.introduction.name), "bob");
  in.u.introduction.observed = addr4("203.0.113.2", 5000);
  in.u.introduction.portmap = addr4("203.0.113.2", 6000);
  in.u.introduction.portmap_method = NT_PORTMAP_UPNP;
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(out.u.introduction.portmap_method == NT_PORTMAP_UPNP);
}

static const nt_test_case cases[] = {
    {"ssdp", test_ssdp},
    {"url", test_url},
    {"description", test_description},
    {"requests", test_requests},
    {"http", test_http},
    {"soap", test_soap},
    {"method", test_method},
    {NULL, NULL},
};

int main(void) {
  return nt_test_run(cases);
}
