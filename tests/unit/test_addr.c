/* Unit tests for address parsing and formatting (src/addr.c). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "eddy/tcp.h"

/* Parses text, formats the result and compares it with want. */
static void assert_round_trip(const char *text, const char *want)
{
    struct eddy_addr a;
    char buf[EDDY_ADDR_STRLEN];
    int rc = eddy_addr_parse(&a, text);
    cr_assert_eq(rc, 0, "parse(\"%s\") returned %d", text, rc);
    eddy_addr_format(&a, buf, sizeof buf);
    cr_assert_str_eq(buf, want, "parse(\"%s\") formats as \"%s\"", text, buf);

    /* What was formatted parses back to the same address. */
    struct eddy_addr again;
    cr_assert_eq(eddy_addr_parse(&again, buf), 0, "\"%s\" does not parse back", buf);
    cr_assert_eq(again.len, a.len);
    cr_assert_eq(memcmp(&again.ss, &a.ss, a.len), 0, "\"%s\" parses back differently", buf);
}

static const struct sockaddr_in *as_in(const struct eddy_addr *a)
{
    return (const struct sockaddr_in *)&a->ss;
}

static const struct sockaddr_in6 *as_in6(const struct eddy_addr *a)
{
    return (const struct sockaddr_in6 *)&a->ss;
}

static const struct sockaddr_un *as_un(const struct eddy_addr *a)
{
    return (const struct sockaddr_un *)&a->ss;
}

Test(addr, ipv4)
{
    struct eddy_addr a;
    cr_assert_eq(eddy_addr_parse(&a, "10.1.2.3:8080"), 0);
    cr_assert_eq(a.ss.ss_family, AF_INET);
    cr_assert_eq(a.len, sizeof(struct sockaddr_in));
    cr_assert_eq(ntohs(as_in(&a)->sin_port), 8080);
    cr_assert_eq(ntohl(as_in(&a)->sin_addr.s_addr), 0x0a010203u);
    assert_round_trip("10.1.2.3:8080", "10.1.2.3:8080");
    assert_round_trip("0.0.0.0:1", "0.0.0.0:1");
    assert_round_trip("255.255.255.255:65535", "255.255.255.255:65535");
}

Test(addr, ipv6)
{
    struct eddy_addr a;
    cr_assert_eq(eddy_addr_parse(&a, "[::1]:443"), 0);
    cr_assert_eq(a.ss.ss_family, AF_INET6);
    cr_assert_eq(a.len, sizeof(struct sockaddr_in6));
    cr_assert_eq(ntohs(as_in6(&a)->sin6_port), 443);
    cr_assert(IN6_IS_ADDR_LOOPBACK(&as_in6(&a)->sin6_addr));
    assert_round_trip("[::1]:443", "[::1]:443");
    assert_round_trip("[::]:80", "[::]:80");
    /* Formatting gives the canonical (compressed, lower-case) form. */
    assert_round_trip("[2001:DB8:0:0:0:0:0:1]:9", "[2001:db8::1]:9");
    assert_round_trip("[::ffff:1.2.3.4]:7", "[::ffff:1.2.3.4]:7");
}

Test(addr, localhost_is_ipv4_loopback)
{
    struct eddy_addr a;
    cr_assert_eq(eddy_addr_parse(&a, "localhost:80"), 0);
    cr_assert_eq(a.ss.ss_family, AF_INET);
    cr_assert_eq(ntohl(as_in(&a)->sin_addr.s_addr), INADDR_LOOPBACK);
    assert_round_trip("localhost:80", "127.0.0.1:80");
}

Test(addr, port_zero)
{
    struct eddy_addr a;
    cr_assert_eq(eddy_addr_parse(&a, "127.0.0.1:0"), 0);
    cr_assert_eq(as_in(&a)->sin_port, 0);
    assert_round_trip("127.0.0.1:0", "127.0.0.1:0");
    assert_round_trip("[::1]:0", "[::1]:0");
    /* Leading zeros are still a number in range. */
    assert_round_trip("127.0.0.1:00080", "127.0.0.1:80");
}

Test(addr, unix_path)
{
    struct eddy_addr a;
    cr_assert_eq(eddy_addr_parse(&a, "unix:/run/eddy.sock"), 0);
    cr_assert_eq(a.ss.ss_family, AF_UNIX);
    cr_assert_str_eq(as_un(&a)->sun_path, "/run/eddy.sock");
    cr_assert_eq(a.len, offsetof(struct sockaddr_un, sun_path) + strlen("/run/eddy.sock") + 1);
    assert_round_trip("unix:/run/eddy.sock", "unix:/run/eddy.sock");
    /* A relative path, and one with a colon in it, are paths too. */
    assert_round_trip("unix:rel.sock", "unix:rel.sock");
    assert_round_trip("unix:/tmp/a:b", "unix:/tmp/a:b");
}

Test(addr, longest_unix_path)
{
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    memset(path, 'p', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    char text[sizeof path + 8];
    snprintf(text, sizeof text, "unix:%s", path);

    /* sun_path holds 107 characters and the NUL. */
    assert_round_trip(text, text);
    char buf[EDDY_ADDR_STRLEN];
    struct eddy_addr a;
    cr_assert_eq(eddy_addr_parse(&a, text), 0);
    cr_assert_eq(strlen(eddy_addr_format(&a, buf, sizeof buf)), strlen(text));
}

Test(addr, too_long_unix_path_is_refused)
{
    char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
    memset(path, 'p', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    char text[sizeof path + 8];
    snprintf(text, sizeof text, "unix:%s", path);
    struct eddy_addr a;
    cr_assert_eq(eddy_addr_parse(&a, text), -EINVAL);
}

Test(addr, malformed_text_is_refused)
{
    static const char *const bad[] = {
        "",
        "1.2.3.4",
        "1.2.3.4:",
        "1.2.3.4:65536",
        "1.2.3.4:99999999999999999999999",
        "1.2.3.4:-1",
        "1.2.3.4:+80",
        "1.2.3.4: 80",
        "1.2.3.4:80 ",
        "1.2.3.4:80x",
        "1.2.3.4:0x50",
        "127.1:80",
        "0x7f.0.0.1:80",
        "1.2.3.4.5:80",
        "256.1.1.1:80",
        ":80",
        "host:80",
        "example.com:80",
        "::1:80",
        "[::1]80",
        "[::1]:",
        "[::1]",
        "[::1:80",
        "[]:80",
        "[1.2.3.4]:80",
        "[::1]:65536",
        "[fe80::1%lo]:80",
        "unix:",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct eddy_addr a;
        int rc = eddy_addr_parse(&a, bad[i]);
        cr_expect_eq(rc, -EINVAL, "parse(\"%s\") returned %d, not -EINVAL", bad[i], rc);
    }
}

/* The contract: "-EINVAL with nothing stored when the text is malformed". A
 * caller may parse into an address that already holds a good one. */
Test(addr, refused_text_leaves_the_address_untouched)
{
    static const char *const bad[] = {
        "1.2.3.4", "1.2.3.4:65536", "127.1:80", "host:80", "[zz::1]:80", "[::1]80", "unix:",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct eddy_addr a, before;
        cr_assert_eq(eddy_addr_parse(&a, "192.168.7.9:4321"), 0);
        memcpy(&before, &a, sizeof a);
        cr_assert_eq(eddy_addr_parse(&a, bad[i]), -EINVAL);
        cr_expect_eq(memcmp(&a, &before, sizeof a), 0,
                     "parse(\"%s\") failed but changed the address", bad[i]);
    }
}

Test(addr, format_of_an_unknown_family)
{
    struct eddy_addr a;
    memset(&a, 0, sizeof a);
    a.ss.ss_family = AF_UNSPEC;
    char buf[32];
    cr_assert_str_eq(eddy_addr_format(&a, buf, sizeof buf), "unknown");
}

Test(addr, format_truncates_to_the_buffer)
{
    struct eddy_addr a;
    cr_assert_eq(eddy_addr_parse(&a, "123.123.123.123:65535"), 0);
    char buf[8];
    memset(buf, 'Z', sizeof buf);
    char *rc = eddy_addr_format(&a, buf, sizeof buf);
    cr_assert_eq(rc, buf);
    cr_assert_str_eq(buf, "123.123");
}

Test(addr, addr_strlen_fits_every_form)
{
    char buf[EDDY_ADDR_STRLEN];
    struct eddy_addr a;
    const char *longest6 = "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535";
    cr_assert_eq(eddy_addr_parse(&a, longest6), 0);
    eddy_addr_format(&a, buf, sizeof buf);
    cr_assert_eq(strncmp(buf, "[ffff:", 6), 0);
    cr_assert(strlen(buf) + 1 <= EDDY_ADDR_STRLEN);
    cr_assert_str_eq(buf + strlen(buf) - 6, ":65535");
}
