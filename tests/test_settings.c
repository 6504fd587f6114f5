/* The settings table (cli/settings.h) against what is written about it:
 * every flag is in the flags part of `natter -h` and defined in the
 * OPTIONS of natter(1); every key is defined in the KEYS of natter.conf(5);
 * and the other way round, a flag or key documented there, or named by the
 * bash completion, must be in the table. Where the library has the
 * setting, the table's default is the library's. */
#include "config.h"
#include "natter.h"
#include "test.h"
#include "usage.h"

#include <stdlib.h>

#ifndef NATTER_SOURCE_DIR
#error "NATTER_SOURCE_DIR must name the source tree (for doc/)"
#endif

#define MAX_TERMS 256

typedef struct terms {
  char *word[MAX_TERMS];
  size_t n;
} terms;

static void terms_free(terms *t) {
  for (size_t i = 0; i < t->n; i++) {
    free(t->word[i]);
  }
  t->n = 0;
}

static void terms_add(terms *t, const char *s, size_t len) {
  if (t->n < MAX_TERMS) {
    t->word[t->n++] = strndup(s, len);
  }
}

static int terms_has(const terms *t, const char *word) {
  for (size_t i = 0; i < t->n; i++) {
    if (strcmp(t->word[i], word) == 0) {
      return 1;
    }
  }
  return 0;
}

static char *read_doc(const char *name) {
  char path[512];
  FILE *f;
  char *text = NULL;
  size_t cap = 0;

  snprintf(path, sizeof(path), "%s/doc/%s", NATTER_SOURCE_DIR, name);
  f = fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "cannot read %s\n", path);
    return NULL;
  }
  if (getdelim(&text, &cap, '\0', f) < 0) {
    free(text);
    text = NULL;
  }
  fclose(f);
  return text;
}

/* The bold terms that start the definition lines of "# SECTION" in an
 * scdoc page: "*-flag* _ARG_", "*-h*, *--help*", "*key* = _VALUE_". */
static void scd_terms(const char *doc, const char *section, terms *t) {
  char heading[64];
  const char *p;

  snprintf(heading, sizeof(heading), "\n# %s\n", section);
  p = doc ? strstr(doc, heading) : NULL;
  if (p == NULL) {
    return;
  }
  p += strlen(heading);
  while (*p != '\0' && strncmp(p, "# ", 2) != 0) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    const char *q = p;
    while (q < p + len && *q == '*') {
      const char *end = memchr(q + 1, '*', (size_t)(p + len - q - 1));
      if (end == NULL) {
        break;
      }
      terms_add(t, q + 1, (size_t)(end - q - 1));
      q = end + 1;
      if (strncmp(q, ", *", 3) != 0) {
        break;
      }
      q += 2;
    }
    p += len + (eol ? 1 : 0);
  }
}

/* The flags of `natter -h` as the settings print them: the lines that
 * start with blanks and '-', "-flag" or "-h, --help". */
static void usage_flags(terms *t) {
  char *text = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&text, &len);
  const char *p;

  cli_settings_usage(out);
  fclose(out);
  for (p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : "") {
    const char *q = p;
    while (*q == ' ') {
      q++;
    }
    while (*q == '-') {
      size_t n = strcspn(q, " ,\n");
      terms_add(t, q, n);
      q += n;
      if (strncmp(q, ", -", 3) != 0) {
        break;
      }
      q += 2;
    }
  }
  free(text);
}

static int is_table_flag(const char *flag) {
  return cli_setting_by_flag(flag) != NULL;
}

static void test_flags_documented(void) {
  char *man1 = read_doc("natter.1.scd");
  terms help = {0}, options = {0};

  CHECK(man1 != NULL);
  usage_flags(&help);
  scd_terms(man1, "OPTIONS", &options);
  CHECK(help.n >= 10 && options.n >= 10);
  for (int i = 0; i < CLI_S_COUNT; i++) {
    const char *flag = cli_settings[i].flag;
    if (flag == NULL) {
      continue;
    }
    if (!terms_has(&help, flag)) {
      fprintf(stderr, "flag %s is not in natter -h\n", flag);
      CHECK(0);
    }
    if (!terms_has(&options, flag)) {
      fprintf(stderr, "flag %s is not defined in OPTIONS of natter.1.scd\n",
              flag);
      CHECK(0);
    }
  }
  for (size_t i = 0; i < options.n; i++) {
    if (options.word[i][0] == '-' && !is_table_flag(options.word[i])) {
      fprintf(stderr, "natter.1.scd defines %s, which cli/settings.h lacks\n",
              options.word[i]);
      CHECK(0);
    }
  }
  for (size_t i = 0; i < help.n; i++) {
    CHECK(is_table_flag(help.word[i]));
  }
  terms_free(&help);
  terms_free(&options);
  free(man1);
}

/* The keys SIGHUP reloads (RELOAD) are the ones RELOADING names. */
static void test_reload_documented(void) {
  char *man5 = read_doc("natter.conf.5.scd");
  const char *start = man5 ? strstr(man5, "\n# RELOADING\n") : NULL;
  const char *end = start ? strstr(start + 1, "\n# ") : NULL;
  char *section =
      start ? strndup(start, end ? (size_t)(end - start) : strlen(start))
            : NULL;

  CHECK(section != NULL);
  for (int i = 0; section && i < CLI_S_COUNT; i++) {
    const cli_setting *s = &cli_settings[i];
    if (s->key && s->reload && strstr(section, s->key) == NULL) {
      fprintf(stderr,
              "SIGHUP reloads %s, which RELOADING of "
              "natter.conf.5.scd does not name\n",
              s->key);
      CHECK(0);
    }
  }
  free(section);
  free(man5);
}

static void test_keys_documented(void) {
  char *man5 = read_doc("natter.conf.5.scd");
  terms keys = {0};

  CHECK(man5 != NULL);
  scd_terms(man5, "KEYS", &keys);
  CHECK(keys.n >= 10);
  for (int i = 0; i < CLI_S_COUNT; i++) {
    const char *key = cli_settings[i].key;
    if (key != NULL && !terms_has(&keys, key)) {
      fprintf(stderr, "key %s is not defined in KEYS of natter.conf.5.scd\n",
              key);
      CHECK(0);
    }
  }
  for (size_t i = 0; i < keys.n; i++) {
    const char *k = keys.word[i];
    if (cli_setting_by_key(k, strlen(k)) == NULL) {
      fprintf(stderr,
              "natter.conf.5.scd defines %s, which cli/settings.h "
              "lacks\n",
              k);
      CHECK(0);
    }
  }
  terms_free(&keys);
  free(man5);
}

/* The completion takes its flags from `natter -h`; a flag it names by
 * itself (in a case pattern, say) must still be one of the table. */
static void test_completion(void) {
  char *comp = read_doc("natter.bash-completion");
  const char *p = comp;

  CHECK(comp != NULL);
  CHECK(comp && strstr(comp, "\" -h ") != NULL); /* reads natter -h */
  while (p && (p = strstr(p, " -")) != NULL) {
    size_t n = strspn(p + 1, "-abcdefghijklmnopqrstuvwxyz");
    char word[64];
    p++;
    if (n < 2 || n >= sizeof(word) || p[1] == '-' ||
        strchr(")| ", p[n]) == NULL) {
      p += n;
      continue;
    }
    memcpy(word, p, n);
    word[n] = '\0';
    p += n;
    /* One letter after '-' is bash's own (-n, -f, -W): not a flag. */
    if (n > 2 && !is_table_flag(word)) {
      fprintf(stderr, "the completion names %s, which cli/settings.h lacks\n",
              word);
      CHECK(0);
    }
  }
  free(comp);
}

/* A value as the table writes its default, read as the setting reads it. */
static unsigned long long table_default(cli_setting_id id) {
  cli_config c;
  char why[200];
  unsigned long long v = 0;
  const cli_setting *s = &cli_settings[id];

  cli_config_init(&c);
  CHECK(s->def != NULL);
  if (s->def != NULL &&
      cli_setting_set(&c, s, s->def, 1, 1, why, sizeof(why)) == 0) {
    memcpy(&v, (const char *)&c + s->off, sizeof(v));
  } else {
    fprintf(stderr, "the default of %s does not parse\n", s->key);
    CHECK(0);
  }
  cli_config_free(&c);
  return v;
}

static void test_defaults_are_the_library_defaults(void) {
  natter_client_config cc;
  natter_broker_config bc;

  natter_client_config_default(&cc);
  natter_broker_config_default(&bc);
  CHECK(table_default(CLI_S_TIMEOUT) * 1000 == cc.connect_timeout_ms);
  CHECK(table_default(CLI_S_MAX_COMMANDS) == cc.max_commands);
  CHECK(table_default(CLI_S_MAX_COMMANDS_PER_PEER) == cc.max_commands_per_peer);
  CHECK(table_default(CLI_S_MAX_STREAMS) == cc.max_streams);
  CHECK(table_default(CLI_S_MAX_CLIENTS) == bc.max_clients);
  CHECK(table_default(CLI_S_MAX_PENDING) == bc.max_pending);
  CHECK(table_default(CLI_S_MAX_PER_ADDRESS) == bc.max_per_source);
  CHECK(table_default(CLI_S_RETRY_ABOVE) == bc.retry_above_per_s);
  CHECK(table_default(CLI_S_NAME_EXPIRY) == bc.name_expiry_s);
  CHECK(table_default(CLI_S_RELAY_RATE) == bc.relay_rate);
  CHECK(table_default(CLI_S_RELAY_TOTAL) == bc.relay_total);
  CHECK(table_default(CLI_S_NEW_NAMES_PER_HOUR) == bc.new_names_per_hour);
  CHECK(table_default(CLI_S_BROKER_TCP) == (unsigned long long)cc.broker_tcp_port);
}

/* Each entry is usable: a flag or a key, and a value name for a flag that
 * takes one; names are unique. */
static void test_table_shape(void) {
  for (int i = 0; i < CLI_S_COUNT; i++) {
    const cli_setting *s = &cli_settings[i];
    CHECK(s->flag || s->key);
    CHECK(s->help != NULL);
    if (s->flag) {
      CHECK(cli_setting_by_flag(s->flag) == s);
      CHECK(s->flag[0] == '-');
    }
    if (s->key) {
      CHECK(cli_setting_by_key(s->key, strlen(s->key)) == s);
    }
    if (s->type == CLI_T_COUNT) {
      CHECK(s->min <= s->max && s->expect != NULL);
    }
  }
}

int main(void) {
  static const nt_test_case cases[] = {
      {"table_shape", test_table_shape},
      {"flags_documented", test_flags_documented},
      {"keys_documented", test_keys_documented},
      {"reload_documented", test_reload_documented},
      {"completion", test_completion},
      {"defaults", test_defaults_are_the_library_defaults},
      {NULL, NULL},
  };
  return nt_test_run(cases);
}
