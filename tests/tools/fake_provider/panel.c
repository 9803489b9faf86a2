/* panel.c - the fake provider's Xtream Codes panel: GET
 * /player_api.php?username=U&password=P answers user_info (auth, status,
 * exp_date, active_cons, max_connections) and server_info as a panel does,
 * with --panel's choices (fp.h). */
#include "fp.h"
#include "log.h"

#include <cJSON.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <string.h>

const char *const fp_status_names[FP_STATUS_COUNT] = {"Active", "Expired", "Banned", "Disabled"};

/*--- Panel API (player_api.php) --------------------------------------------*/

/* Adds key: n as a string ("2"), or as a number with numbers. */
static bool fp_panel_add_count(cJSON *o, const char *key, long n, bool numbers)
{
    char text[24];
    if (numbers)
        return cJSON_AddNumberToObject(o, key, (double)n) != NULL;
    snprintf(text, sizeof(text), "%ld", n);
    return cJSON_AddStringToObject(o, key, text) != NULL;
}

/* The answer to an account's own credentials; the caller frees it with
 * cJSON_Delete(). NULL when out of memory. */
static cJSON *fp_panel_json(const fp_server *srv, const fp_user *u)
{
    static const char *const formats[] = {"m3u8", "ts"};
    char text[32];
    time_t now = time(NULL);
    struct tm tm;
    cJSON *root = cJSON_CreateObject();
    cJSON *ui = root ? cJSON_AddObjectToObject(root, "user_info") : NULL;
    cJSON *si = root ? cJSON_AddObjectToObject(root, "server_info") : NULL;
    if (ui == NULL || si == NULL)
        goto err;
    if (!cJSON_AddStringToObject(ui, "username", u->name) ||
        !cJSON_AddStringToObject(ui, "password", u->pass) ||
        !cJSON_AddStringToObject(ui, "message", "") || !cJSON_AddNumberToObject(ui, "auth", 1) ||
        !cJSON_AddStringToObject(ui, "status", fp_status_names[u->panel.status]))
        goto err;
    snprintf(text, sizeof(text), "%ld", u->panel.exp_date);
    if ((u->panel.exp_date < 0 ? cJSON_AddNullToObject(ui, "exp_date")
                               : cJSON_AddStringToObject(ui, "exp_date", text)) == NULL)
        goto err;
    snprintf(text, sizeof(text), "%ld", FP_PANEL_CREATED);
    if (!cJSON_AddStringToObject(ui, "is_trial", "0") ||
        !fp_panel_add_count(ui, "active_cons", u->current, u->panel.numbers) ||
        !cJSON_AddStringToObject(ui, "created_at", text) ||
        !fp_panel_add_count(ui, "max_connections",
                            u->real.panel_max >= 0 ? u->real.panel_max : u->limit,
                            u->panel.numbers) ||
        !cJSON_AddItemToObject(ui, "allowed_output_formats", cJSON_CreateStringArray(formats, 2)))
        goto err;
    snprintf(text, sizeof(text), "%d", srv->port);
    if (!cJSON_AddStringToObject(si, "url", srv->host) ||
        !cJSON_AddStringToObject(si, "port", text) ||
        !cJSON_AddStringToObject(si, "https_port", "") ||
        !cJSON_AddStringToObject(si, "server_protocol", "http") ||
        !cJSON_AddStringToObject(si, "rtmp_port", "") ||
        !cJSON_AddStringToObject(si, "timezone", "UTC") ||
        !cJSON_AddNumberToObject(si, "timestamp_now", (double)now))
        goto err;
    if (gmtime_r(&now, &tm) == NULL || strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S", &tm) == 0)
        text[0] = '\0';
    if (!cJSON_AddStringToObject(si, "time_now", text))
        goto err;
    return root;
err:
    cJSON_Delete(root);
    return NULL;
}

/* GET /player_api.php?username=U&password=P. Panels answer a bad login with
 * 200 and auth 0, not with an HTTP error. */
void fp_serve_panel(fp_server *srv, struct evhttp_request *req)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    /* evhttp_parse_query_str() initialises params, and clears them on error. */
    bool parsed = query != NULL && evhttp_parse_query_str(query, &params) == 0;
    const char *name = parsed ? evhttp_find_header(&params, "username") : NULL;
    const char *pass = parsed ? evhttp_find_header(&params, "password") : NULL;
    fp_user *u = name ? fp_user_find(srv, name) : NULL;
    cJSON *doc;

    if (u != NULL)
        u->panel_requests++;
    if (u != NULL && pass != NULL && strcmp(u->pass, pass) == 0 && !u->panel.refuse) {
        doc = fp_panel_json(srv, u);
    } else {
        sfl_debug("panel: no login for %s", name ? name : "(none)");
        doc = cJSON_CreateObject();
        cJSON *ui = doc ? cJSON_AddObjectToObject(doc, "user_info") : NULL;
        if (ui == NULL || !cJSON_AddNumberToObject(ui, "auth", 0)) {
            cJSON_Delete(doc);
            doc = NULL;
        }
    }
    if (parsed)
        evhttp_clear_headers(&params);
    fp_send_json(req, doc);
}
