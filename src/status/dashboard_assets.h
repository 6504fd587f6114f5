/* The dashboard's page, style sheet and script (src/status/dashboard/),
 * as compiled into the library: cmake/embed.cmake turns each file into
 * one of these arrays at build time (dashboard_assets.c in the build
 * tree), so the files stay real files to edit and review, and the
 * library needs nothing on disk. */
#ifndef NT_DASHBOARD_ASSETS_H
#define NT_DASHBOARD_ASSETS_H

#include <stddef.h>

extern const unsigned char nt_asset_index_html[];
extern const size_t nt_asset_index_html_len;
extern const unsigned char nt_asset_dashboard_css[];
extern const size_t nt_asset_dashboard_css_len;
extern const unsigned char nt_asset_dashboard_js[];
extern const size_t nt_asset_dashboard_js_len;

#endif
