/* test_dispatcharr_tls.c - `sflimit accounts sync` over https:// against the
 * fake Dispatcharr with TLS (--tls), with a CA and a server certificate made
 * at test time by the openssl command: trusted through dispatcharr.ca_file
 * the limits land in Redis; an untrusted certificate, or one for another
 * name, fails the sync, says it was the certificate, and writes nothing.
 *
 * Without the openssl command the tests are skipped, unless
 * SFL_REQUIRE_TLS=1 (CI), where that is a failure. */
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PASSWORD "Pw-tls-5e1d-distinctive"

static sfl_test_redis redis;
static char dir[128];
static sfl_test_dispatcharr fake;

static const char accounts_json[] =
    "[{\"id\": 7, \"name\": \"Provider A\", \"max_streams\": 1, \"is_active\": true,\n"
    "  \"profiles\": [\n"
    "   {\"id\": 70, \"name\": \"one\", \"max_streams\": 1, \"is_active\": true},\n"
    "   {\"id\": 71, \"name\": \"two\", \"max_streams\": 2, \"is_active\": true}]}]\n";

static void setup(void)
{
    th_redis_start(&redis, NULL);
    th_tmpdir(dir, sizeof(dir));
    memset(&fake, 0, sizeof(fake));
}

static void teardown(void)
{
    th_dispatcharr_stop(&fake);
    th_redis_stop(&redis);
}

TestSuite(dispatcharr_tls, .init = setup, .fini = teardown, .timeout = 120);

/* dir/ca.pem (a CA) and dir/server.pem + server.key (signed by it, for the
 * subjectAltName san only), then the fake with them. Skips the test when
 * there is no openssl command (fails it with SFL_REQUIRE_TLS=1). */
static void start_tls_fake(const char *san)
{
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        const char *req = getenv("SFL_REQUIRE_TLS");
        cr_assert(!req || strcmp(req, "1") != 0, "SFL_REQUIRE_TLS=1 but no openssl command");
        cr_skip_test("the openssl command is not installed: cannot make test certificates");
    }
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && exec >openssl.log 2>&1 && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout ca.key -out ca.pem -days 2 -subj '/CN=sfl test CA' && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout server.key -out server.csr -subj '/CN=localhost' && "
             "printf 'subjectAltName=%s\\n' >ext.cnf && "
             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out server.pem -days 2 -extfile ext.cnf",
             dir, san);
    cr_assert_eq(system(cmd), 0, "openssl could not make the certificates (see %s/openssl.log)",
                 dir);
    char tls[300];
    snprintf(tls, sizeof(tls), "%s/server.pem,%s/server.key", dir, dir);
    const char *extra[] = {"--tls", tls, NULL};
    th_dispatcharr_start(&fake, dir, accounts_json, PASSWORD, NULL, extra);
}

/* A config for the fake at https://host:port; ca_file NULL = none. */
static void write_config(char *path, size_t len, const char *host, const char *ca_file)
{
    char text[1024], ca[300] = "";
    if (ca_file)
        snprintf(ca, sizeof(ca), ", \"ca_file\": \"%s\"", ca_file);
    snprintf(text, sizeof(text),
             "{\"node_id\": \"t\", \"redis\": {\"url\": \"%s\"},\n"
             " \"dispatcharr\": {\"url\": \"https://%s:%d\", \"username\": \"admin\", "
             "\"password\": \"%s\"%s}}\n",
             redis.url, host, fake.port, PASSWORD, ca);
    th_write_file(dir, "sflimit.json", text, path, len);
}

typedef struct run_result {
    int code;
    char *out, *err;
} run_result;

static run_result run_sync(const char *config)
{
    const char *argv[] = {SFL_BIN, "accounts", "sync", "-c", config, NULL};
    th_run run;
    th_run_start(&run, dir, argv);
    int st = th_run_wait(&run, 60000);
    run_result r = {th_exit_code(st), th_read_file(run.out), th_read_file(run.err)};
    cr_assert(r.out && r.err);
    cr_assert_null(strstr(r.err, PASSWORD), "stderr shows the password:\n%s", r.err);
    cr_assert_null(strstr(r.out, PASSWORD), "stdout shows the password:\n%s", r.out);
    return r;
}

static void run_free(run_result *r)
{
    free(r->out);
    free(r->err);
}

/* A sync that must fail on the certificate: exit 1, want said, nothing
 * written. (The fake's /fixture routes are https too, and the harness
 * speaks plain HTTP, so its counters are not read here.) */
static void expect_cert_failure(const char *config, const char *want)
{
    run_result r = run_sync(config);
    cr_assert_eq(r.code, 1, "exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.out, r.err);
    cr_assert(strstr(r.err, want), "stderr lacks \"%s\":\n%s", want, r.err);
    cr_assert_str_eq(r.out, "", "printed accounts on failure");
    cr_assert_eq(th_redis_int(&redis, "DBSIZE"), 0, "the failed sync wrote to Redis");
    run_free(&r);
}

Test(dispatcharr_tls, sync_over_https_with_the_ca_file)
{
    start_tls_fake("DNS:localhost");
    char config[256], ca[256];
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    write_config(config, sizeof(config), "localhost", ca);
    run_result r = run_sync(config);
    cr_assert_eq(r.code, 0, "exit %d, stderr:\n%s", r.code, r.err);
    cr_assert_eq(th_account_limit(&redis, 7), 3, "two active profiles of 1 and 2");
    cr_assert_str_eq(r.out, "account 7 (Provider A): max_streams 3 (new)\n");
    run_free(&r);
}

Test(dispatcharr_tls, untrusted_certificate_fails_and_writes_nothing)
{
    start_tls_fake("DNS:localhost");
    char config[256];
    write_config(config, sizeof(config), "localhost", NULL);
    expect_cert_failure(config, "certificate verify failed for localhost");
}

/* Trusted CA, but the certificate is for localhost, not 127.0.0.1. */
Test(dispatcharr_tls, certificate_for_another_address_fails)
{
    start_tls_fake("DNS:localhost");
    char config[256], ca[256];
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    write_config(config, sizeof(config), "127.0.0.1", ca);
    expect_cert_failure(config, "certificate verify failed for 127.0.0.1");
}

/* Trusted CA, but the certificate is for another host name. */
Test(dispatcharr_tls, certificate_for_another_host_name_fails)
{
    start_tls_fake("DNS:other.example");
    char config[256], ca[256];
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    write_config(config, sizeof(config), "localhost", ca);
    expect_cert_failure(config, "certificate verify failed for localhost: hostname mismatch");
}

/* A ca_file that cannot be read stops the command before any request. */
Test(dispatcharr_tls, unreadable_ca_file_is_a_config_error)
{
    start_tls_fake("DNS:localhost");
    char config[256], ca[256];
    snprintf(ca, sizeof(ca), "%s/no-such-ca.pem", dir);
    write_config(config, sizeof(config), "localhost", ca);
    run_result r = run_sync(config);
    cr_assert_eq(r.code, 2, "exit %d, stderr:\n%s", r.code, r.err);
    cr_assert(strstr(r.err, "dispatcharr.ca_file"), "%s", r.err);
    cr_assert_eq(th_redis_int(&redis, "DBSIZE"), 0);
    run_free(&r);
}
