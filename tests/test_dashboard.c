/* Unit tests for the dashboard (src/status/dashboard.c): the Host check
 * that keeps rebound names out, and the compiled-in files: present,
 * whole, and a script that never writes markup or evaluates strings and
 * a page with no inline script or style (the CSP forbids them anyway). */
#include "status/dashboard.h"
#include "status/dashboard_assets.h"
#include "test.h"

#include <stdlib.h>

static void test_host(void) {
  static const char *const good[] = {
      "127.0.0.1",     "127.0.0.1:9464",  "127.1.2.3:80", "localhost",
      "localhost:9464", "[::1]:9464",     "[::1]",
  };
  static const char *const bad[] = {
      "",
      "evil.example",
      "evil.example:9464",
      "localhost.evil.example",
      "127.0.0.1.evil.example",
      "10.0.0.1:9464",
      "0.0.0.0:9464",
      "[::2]:9464",
      "[::1",
      "[::1]x",
      "[]:80",
      ":9464",
      "LOCALHOST:9464x:1",
      "127.0.0.1 ",
      "::1",
      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
  };
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    if (!nt_dashboard_host_ok(good[i])) {
      fprintf(stderr, "refused Host %s\n", good[i]);
      CHECK(0);
    }
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    if (nt_dashboard_host_ok(bad[i])) {
      fprintf(stderr, "accepted Host %s\n", bad[i]);
      CHECK(0);
    }
  }
  CHECK(!nt_dashboard_host_ok(NULL));
}

/* |asset| as a string (the arrays end in a NUL the length leaves out). */
static const char *text(const unsigned char *asset, size_t len) {
  CHECK(len > 100);
  CHECK(asset[len] == '\0');
  return (const char *)asset;
}

static void test_assets(void) {
  const char *html = text(nt_asset_index_html, nt_asset_index_html_len);
  const char *css = text(nt_asset_dashboard_css, nt_asset_dashboard_css_len);
  const char *js = text(nt_asset_dashboard_js, nt_asset_dashboard_js_len);
  CHECK(strlen(html) == nt_asset_index_html_len);
  CHECK(strlen(js) == nt_asset_dashboard_js_len);
  CHECK_STR_CONTAINS(html, "<script src=\"dashboard.js\" defer></script>");
  CHECK_STR_CONTAINS(html, "href=\"dashboard.css\"");
  CHECK(strstr(html, "<script>") == NULL && strstr(html, "<style") == NULL);
  CHECK(strstr(html, "http:") == NULL && strstr(html, "https:") == NULL);
  CHECK(strstr(css, "@import") == NULL && strstr(css, "url(") == NULL);
  static const char *const never[] = {"innerHTML", "outerHTML",
                                      "insertAdjacentHTML", "document.write",
                                      "eval(", "new Function"};
  for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
    if (strstr(js, never[i])) {
      fprintf(stderr, "dashboard.js uses %s\n", never[i]);
      CHECK(0);
    }
  }
  CHECK_STR_CONTAINS(js, "textContent");
  CHECK_STR_CONTAINS(js, "fetch(\"dashboard.json\"");
  CHECK_STR_CONTAINS(NT_DASHBOARD_CSP, "default-src 'none'");
  CHECK(strstr(NT_DASHBOARD_CSP, "unsafe") == NULL);
}

int main(void) {
  static const nt_test_case cases[] = {
      {"host", test_host}, {"assets", test_assets}, {NULL, NULL}};
  return nt_test_run(cases);
}
