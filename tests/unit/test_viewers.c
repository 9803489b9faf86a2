/* test_viewers.c - the rule that turns Dispatcharr's two proxy answers into
 * one profile's provider connections (sfl_viewers_count, viewers.h; pure):
 * one per channel of /proxy/ts/status in a state that holds a connection
 * (every state but "error" and "stopped", a state not known here included),
 * whatever its client_count; one per VOD and catch-up session of
 * /proxy/stats/, whose "live" entries are the same channels and are not
 * counted again; m3u_profile_id as a number or a string; -1 when a body is
 * not the JSON expected. */
#include "viewers.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

#define PROFILE 70

#define EMPTY_TS "{\"channels\": [], \"count\": 0}"
#define EMPTY_STATS "{\"live\": [], \"vod\": [], \"catchup\": [], \"timestamp\": 0}"
/* A channel of /proxy/ts/status with these members (no comma after). */
#define CH(members) "{\"channel_id\": \"c\", \"client_count\": 1, " members "}"
#define TS1(ch) "{\"channels\": [" ch "], \"count\": 1}"
#define STATS(live, vod, catchup)                                                                  \
    "{\"live\": [" live "], \"vod\": [" vod "], \"catchup\": [" catchup "], \"timestamp\": 1}"
#define SESSION(members) "{\"session_id\": \"s\", \"content_type\": \"movie\", " members "}"

/* Arrays, not pointers: Criterion may run a case in a fresh process. */
struct count_case {
    char what[96];
    char ts[640];
    char stats[400];
    long long profile;
    long long want;
};

/* clang-format off */
static struct count_case count_cases[] = {
    {"empty answers: none", EMPTY_TS, EMPTY_STATS, PROFILE, 0},
    {"state active counts", TS1(CH("\"state\": \"active\", \"m3u_profile_id\": 70")), EMPTY_STATS,
     PROFILE, 1},
    {"state initializing counts (Dispatcharr's reservation)",
     TS1(CH("\"state\": \"initializing\", \"m3u_profile_id\": 70")), EMPTY_STATS, PROFILE, 1},
    {"state connecting counts", TS1(CH("\"state\": \"connecting\", \"m3u_profile_id\": 70")),
     EMPTY_STATS, PROFILE, 1},
    {"state waiting_for_clients counts",
     TS1(CH("\"state\": \"waiting_for_clients\", \"m3u_profile_id\": 70")), EMPTY_STATS, PROFILE,
     1},
    {"state buffering counts", TS1(CH("\"state\": \"buffering\", \"m3u_profile_id\": 70")),
     EMPTY_STATS, PROFILE, 1},
    {"state stopping counts (not closed yet)",
     TS1(CH("\"state\": \"stopping\", \"m3u_profile_id\": 70")), EMPTY_STATS, PROFILE, 1},
    {"state error does not count", TS1(CH("\"state\": \"error\", \"m3u_profile_id\": 70")),
     EMPTY_STATS, PROFILE, 0},
    {"state stopped does not count", TS1(CH("\"state\": \"stopped\", \"m3u_profile_id\": 70")),
     EMPTY_STATS, PROFILE, 0},
    {"a state not known here counts", TS1(CH("\"state\": \"migrating\", \"m3u_profile_id\": 70")),
     EMPTY_STATS, PROFILE, 1},
    {"no state member counts", TS1(CH("\"m3u_profile_id\": 70")), EMPTY_STATS, PROFILE, 1},
    {"a state that is not a string counts", TS1(CH("\"state\": 3, \"m3u_profile_id\": 70")),
     EMPTY_STATS, PROFILE, 1},
    {"one connection per channel whatever its client_count",
     "{\"channels\": [{\"state\": \"active\", \"m3u_profile_id\": 70, \"client_count\": 7}],"
     " \"count\": 1}", EMPTY_STATS, PROFILE, 1},
    {"no clients yet is still one connection",
     "{\"channels\": [{\"state\": \"active\", \"m3u_profile_id\": 70, \"client_count\": 0}],"
     " \"count\": 1}", EMPTY_STATS, PROFILE, 1},
    {"another profile's channel does not count",
     TS1(CH("\"state\": \"active\", \"m3u_profile_id\": 71")), EMPTY_STATS, PROFILE, 0},
    {"m3u_profile_id as a string counts",
     TS1(CH("\"state\": \"active\", \"m3u_profile_id\": \"70\"")), EMPTY_STATS, PROFILE, 1},
    {"another profile as a string does not count",
     TS1(CH("\"state\": \"active\", \"m3u_profile_id\": \"71\"")), EMPTY_STATS, PROFILE, 0},
    {"a string that is not a number is no profile",
     TS1(CH("\"state\": \"active\", \"m3u_profile_id\": \"70x\"")), EMPTY_STATS, PROFILE, 0},
    {"an empty string is no profile",
     TS1(CH("\"state\": \"active\", \"m3u_profile_id\": \"\"")), EMPTY_STATS, PROFILE, 0},
    {"no m3u_profile_id: nobody's", TS1(CH("\"state\": \"active\"")), EMPTY_STATS, PROFILE, 0},
    {"m3u_profile_id null: nobody's", TS1(CH("\"state\": \"active\", \"m3u_profile_id\": null")),
     EMPTY_STATS, PROFILE, 0},
    {"profile 0 is not a channel without m3u_profile_id", TS1(CH("\"state\": \"active\"")),
     EMPTY_STATS, 0, 0},
    {"a VOD session counts", EMPTY_TS, STATS("", SESSION("\"m3u_profile_id\": 70"), ""), PROFILE,
     1},
    {"a catch-up session counts", EMPTY_TS,
     STATS("", "", "{\"content_type\": \"catchup\", \"stream_id\": 9, \"m3u_profile_id\": 70}"),
     PROFILE, 1},
    {"a VOD session with a string profile counts", EMPTY_TS,
     STATS("", SESSION("\"m3u_profile_id\": \"70\""), ""), PROFILE, 1},
    {"another profile's VOD session does not count", EMPTY_TS,
     STATS("", SESSION("\"m3u_profile_id\": 71"), ""), PROFILE, 0},
    {"a session without m3u_profile_id does not count", EMPTY_TS, STATS("", SESSION("\"x\": 1"), ""),
     PROFILE, 0},
    {"stats' live entries are the channels: not counted twice",
     TS1(CH("\"state\": \"active\", \"m3u_profile_id\": 70")),
     STATS(CH("\"state\": \"active\", \"m3u_profile_id\": 70"), "", ""), PROFILE, 1},
    {"stats' live entries alone are not counted", EMPTY_TS,
     STATS(CH("\"state\": \"active\", \"m3u_profile_id\": 70"), "", ""), PROFILE, 0},
    {"stats without vod and catchup members", TS1(CH("\"state\": \"active\", \"m3u_profile_id\": 70")),
     "{\"live\": [], \"timestamp\": 1}", PROFILE, 1},
    {"everything at once: 2 channels, a VOD and a catch-up of the profile",
     "{\"channels\": [" CH("\"state\": \"active\", \"m3u_profile_id\": 70") ", "
     CH("\"state\": \"error\", \"m3u_profile_id\": 70") ", "
     CH("\"state\": \"buffering\", \"m3u_profile_id\": \"70\"") ", "
     CH("\"state\": \"stopped\", \"m3u_profile_id\": 70") ", "
     CH("\"state\": \"active\", \"m3u_profile_id\": 71") "], \"count\": 5}",
     STATS(CH("\"state\": \"active\", \"m3u_profile_id\": 70"),
           SESSION("\"m3u_profile_id\": 70") ", " SESSION("\"m3u_profile_id\": 71"),
           "{\"content_type\": \"catchup\", \"m3u_profile_id\": 70}"),
     PROFILE, 4},
    {"ts/status not JSON", "{\"channels\": [", EMPTY_STATS, PROFILE, -1},
    {"ts/status empty", "", EMPTY_STATS, PROFILE, -1},
    {"ts/status an array", "[]", EMPTY_STATS, PROFILE, -1},
    {"ts/status null", "null", EMPTY_STATS, PROFILE, -1},
    {"ts/status without channels", "{\"count\": 0}", EMPTY_STATS, PROFILE, -1},
    {"ts/status channels not an array", "{\"channels\": {}, \"count\": 0}", EMPTY_STATS, PROFILE,
     -1},
    {"ts/status an HTML error page", "<html><body>502 Bad Gateway</body></html>", EMPTY_STATS,
     PROFILE, -1},
    {"stats not JSON", TS1(CH("\"state\": \"active\", \"m3u_profile_id\": 70")), "{\"vod\": [",
     PROFILE, -1},
    {"stats empty", TS1(CH("\"state\": \"active\", \"m3u_profile_id\": 70")), "", PROFILE, -1},
    {"stats an array", TS1(CH("\"state\": \"active\", \"m3u_profile_id\": 70")), "[]", PROFILE, -1},
    {"stats null", EMPTY_TS, "null", PROFILE, -1},
};
/* clang-format on */

ParameterizedTestParameters(viewers, count)
{
    return cr_make_param_array(struct count_case, count_cases,
                               sizeof(count_cases) / sizeof(count_cases[0]));
}

ParameterizedTest(struct count_case *c, viewers, count)
{
    long long got = sfl_viewers_count(c->ts, strlen(c->ts), c->stats, strlen(c->stats), c->profile);
    cr_assert_eq(got, c->want, "%s: %lld, want %lld\nts/status: %s\nstats: %s", c->what, got,
                 c->want, c->ts, c->stats);
}

/* The bodies come as bytes and a length, not C strings: a body read off the
 * wire has no NUL, and bytes past the length are not the answer's. */
Test(viewers, reads_only_the_given_length)
{
    static const char ts[] = TS1(CH("\"state\": \"active\", \"m3u_profile_id\": 70"));
    static const char stats[] = EMPTY_STATS;
    char ts_raw[sizeof(ts) - 1], stats_raw[sizeof(stats) - 1]; /* no NUL */
    memcpy(ts_raw, ts, sizeof(ts_raw));
    memcpy(stats_raw, stats, sizeof(stats_raw));
    cr_assert_eq(sfl_viewers_count(ts_raw, sizeof(ts_raw), stats_raw, sizeof(stats_raw), 70), 1);

    /* A length that cuts the document: not the JSON expected. */
    cr_assert_eq(sfl_viewers_count(ts, sizeof(ts) - 3, stats, sizeof(stats) - 1, 70), -1);
    cr_assert_eq(sfl_viewers_count(ts, sizeof(ts) - 1, stats, sizeof(stats) - 3, 70), -1);

    /* Bytes after the length are not read: a second channel there is not
     * counted. */
    static const char two[] = "{\"channels\": [{\"state\": \"active\", \"m3u_profile_id\": 70}]}"
                              "{\"channels\": [{\"state\": \"active\", \"m3u_profile_id\": 70},"
                              " {\"state\": \"active\", \"m3u_profile_id\": 70}]}";
    size_t first = strlen("{\"channels\": [{\"state\": \"active\", \"m3u_profile_id\": 70}]}");
    cr_assert_eq(sfl_viewers_count(two, first, stats, sizeof(stats) - 1, 70), 1);
}

/* Each profile is counted on its own from the same answers: the sum over
 * the profiles of a login is what the poller writes. */
Test(viewers, profiles_counted_apart)
{
    /* clang-format off */
    static const char ts[] = "{\"channels\": ["
        CH("\"state\": \"active\", \"m3u_profile_id\": 70") ", "
        CH("\"state\": \"active\", \"m3u_profile_id\": 71") ", "
        CH("\"state\": \"connecting\", \"m3u_profile_id\": 71") "], \"count\": 3}";
    /* clang-format on */
    static const char stats[] = STATS("", SESSION("\"m3u_profile_id\": 72"), "");
    cr_assert_eq(sfl_viewers_count(ts, strlen(ts), stats, strlen(stats), 70), 1);
    cr_assert_eq(sfl_viewers_count(ts, strlen(ts), stats, strlen(stats), 71), 2);
    cr_assert_eq(sfl_viewers_count(ts, strlen(ts), stats, strlen(stats), 72), 1);
    cr_assert_eq(sfl_viewers_count(ts, strlen(ts), stats, strlen(stats), 73), 0);
}
