#include "ws_ext.h"

#include <stdio.h>
#include <string.h>

enum {
    S_BEFORE_EXT = 0, /* OWS, empty list elements */
    S_EXT,            /* extension-token */
    S_AFTER_EXT,      /* OWS after the token */
    S_BEFORE_PARAM,   /* OWS after ';' */
    S_PARAM,          /* parameter name */
    S_AFTER_PARAM,    /* OWS after the name */
    S_BEFORE_VALUE,   /* OWS after '=' */
    S_VALUE,          /* token value */
    S_QVALUE,         /* quoted-string value */
    S_AFTER_VALUE,    /* OWS after the value */
    S_SKIP,           /* after a syntax error: up to the next ',' outside quotes */
};

/* RFC 7692 §7.1 parameters; bit i of `seen` is parameter i. */
enum {
    P_UNKNOWN = 0,
    P_SERVER_NO_CONTEXT,
    P_CLIENT_NO_CONTEXT,
    P_SERVER_BITS,
    P_CLIENT_BITS,
};

static const char *const param_names[] = {
    NULL,
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_max_window_bits",
    "client_max_window_bits",
};

static const char pmd_name[] = "permessage-deflate";

/* RFC 9110 §5.6.2 tchar. */
static int is_tchar(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return 1;
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int is_ows(unsigned char ch)
{
    return ch == ' ' || ch == '\t';
}

/* RFC 9110 §5.6.4 qdtext and the second byte of a quoted-pair (plus '"' and
 * '\\' there). */
static int is_qchar(unsigned char ch)
{
    return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

void ws_ext_init(struct ws_ext_parser *p, const struct pmd_policy *pol)
{
    memset(p, 0, sizeof(*p));
    p->pol = *pol;
    if (p->pol.window_bits < 9)
        p->pol.window_bits = 9; /* zlib's raw deflate has no 8-bit window */
    if (p->pol.window_bits > 15)
        p->pol.window_bits = 15;
}

static void tok_add(struct ws_ext_parser *p, char ch)
{
    if (p->tok_len < WS_EXT_TOKEN_MAX)
        p->tok[p->tok_len] = ch;
    if (p->tok_len < 255)
        p->tok_len++;
}

static int tok_is(const struct ws_ext_parser *p, const char *s)
{
    size_t n = strlen(s);
    return p->tok_len == n && memcmp(p->tok, s, n) == 0;
}

static void begin_offer(struct ws_ext_parser *p)
{
    p->is_pmd = 0;
    p->bad = 0;
    p->seen = 0;
    p->s_bits = 0;
    p->c_bits = 0;
    p->tok_len = 0;
}

/* The extension token is complete. */
static void end_ext_name(struct ws_ext_parser *p)
{
    p->is_pmd = tok_is(p, pmd_name); /* extension names compare exactly */
    p->tok_len = 0;
}

/* A parameter name is complete: identify it (RFC 7692 §7.1: an unknown or a
 * repeated parameter declines the offer). */
static void end_param_name(struct ws_ext_parser *p)
{
    p->param = P_UNKNOWN;
    p->have_value = 0;
    p->quoted = 0;
    for (unsigned i = 1; i < sizeof(param_names) / sizeof(param_names[0]); i++) {
        if (tok_is(p, param_names[i])) {
            p->param = (uint8_t)i;
            break;
        }
    }
    p->tok_len = 0;
    if (!p->is_pmd)
        return;
    if (p->param == P_UNKNOWN || (p->seen & (1u << p->param)))
        p->bad = 1;
    else
        p->seen |= (uint8_t)(1u << p->param);
}

/* "8".."15", decimal without leading zeros (RFC 7692 §7.1.2.1). 0 if not. */
static unsigned window_value(const struct ws_ext_parser *p)
{
    if (p->tok_len == 1 && p->tok[0] >= '8' && p->tok[0] <= '9')
        return (unsigned)(p->tok[0] - '0');
    if (p->tok_len == 2 && p->tok[0] == '1' && p->tok[1] >= '0' && p->tok[1] <= '5')
        return 10u + (unsigned)(p->tok[1] - '0');
    return 0;
}

/* A parameter (with or without its value) is complete: judge the value. */
static void end_param(struct ws_ext_parser *p)
{
    if (!p->is_pmd || p->bad) {
        p->tok_len = 0;
        return;
    }
    /* §7.1: a quoted value must be a token after unescaping. */
    if (p->have_value && p->quoted) {
        if (p->tok_len == 0)
            p->bad = 1;
        for (size_t i = 0; i < p->tok_len && i < WS_EXT_TOKEN_MAX; i++)
            if (!is_tchar((unsigned char)p->tok[i]))
                p->bad = 1;
    }
    switch (p->param) {
    case P_SERVER_NO_CONTEXT:
    case P_CLIENT_NO_CONTEXT:
        if (p->have_value)
            p->bad = 1; /* §7.1.1.1, §7.1.1.2: no value */
        break;
    case P_SERVER_BITS: /* §7.1.2.1: a value is required */
        p->s_bits = (uint8_t)(p->have_value ? window_value(p) : 0);
        if (p->s_bits == 0)
            p->bad = 1;
        break;
    case P_CLIENT_BITS: /* §7.1.2.2: the value is optional */
        if (p->have_value) {
            p->c_bits = (uint8_t)window_value(p);
            if (p->c_bits == 0)
                p->bad = 1;
        }
        break;
    default:
        p->bad = 1;
        break;
    }
    p->tok_len = 0;
}

/* The offer is complete: accept it if it is the first we can honour. */
static void end_offer(struct ws_ext_parser *p)
{
    if (p->is_pmd && !p->bad && !p->chosen) {
        unsigned w = p->pol.window_bits;
        if (p->s_bits && p->s_bits < w)
            w = p->s_bits;
        /* §7.1.2.1: the answer may not exceed an offered server_max_window_bits;
         * zlib cannot compress with an 8-bit window, so such an offer is declined. */
        if (w >= 9) {
            p->chosen = 1;
            p->out.server_window_bits = (uint8_t)w;
            p->out.server_window_offered = p->s_bits != 0;
            /* §7.1.2.2: echo the client's own limit; without a value we do not
             * restrict it (we inflate with a 15-bit window). */
            p->out.client_window_bits = p->c_bits;
            p->out.client_no_context = 1;
        }
    }
    begin_offer(p);
}

static void syntax_error(struct ws_ext_parser *p)
{
    p->bad = 1;
    p->state = S_SKIP;
    p->quoted = 0;
    p->esc = 0;
}

static void step(struct ws_ext_parser *p, unsigned char ch)
{
    switch (p->state) {
    case S_BEFORE_EXT:
        if (is_ows(ch) || ch == ',')
            return; /* RFC 9110 §5.6.1: empty list elements are ignored */
        if (!is_tchar(ch))
            return syntax_error(p);
        begin_offer(p);
        tok_add(p, (char)ch);
        p->state = S_EXT;
        return;
    case S_EXT:
        if (is_tchar(ch)) {
            tok_add(p, (char)ch);
            return;
        }
        end_ext_name(p);
        p->state = S_AFTER_EXT;
        /* judge ch as the first byte after the name */
        /* fall through */
    case S_AFTER_EXT:
        if (is_ows(ch))
            return;
        if (ch == ';') {
            p->state = S_BEFORE_PARAM;
        } else if (ch == ',') {
            end_offer(p);
            p->state = S_BEFORE_EXT;
        } else {
            syntax_error(p);
        }
        return;
    case S_BEFORE_PARAM:
        if (is_ows(ch))
            return;
        if (!is_tchar(ch))
            return syntax_error(p);
        p->tok_len = 0;
        tok_add(p, (char)ch);
        p->state = S_PARAM;
        return;
    case S_PARAM:
        if (is_tchar(ch)) {
            tok_add(p, (char)ch);
            return;
        }
        end_param_name(p);
        p->state = S_AFTER_PARAM;
        /* fall through */
    case S_AFTER_PARAM:
        if (is_ows(ch))
            return;
        if (ch == '=') {
            p->state = S_BEFORE_VALUE;
            return;
        }
        goto after_value;
    case S_BEFORE_VALUE:
        if (is_ows(ch))
            return;
        p->have_value = 1;
        if (ch == '"') {
            p->quoted = 1;
            p->esc = 0;
            p->state = S_QVALUE;
        } else if (is_tchar(ch)) {
            tok_add(p, (char)ch);
            p->state = S_VALUE;
        } else {
            syntax_error(p);
        }
        return;
    case S_VALUE:
        if (is_tchar(ch)) {
            tok_add(p, (char)ch);
            return;
        }
        p->state = S_AFTER_VALUE;
        goto after_value;
    case S_QVALUE:
        if (!is_qchar(ch))
            return syntax_error(p);
        if (p->esc) {
            p->esc = 0;
            tok_add(p, (char)ch); /* quoted-pair: the byte itself */
        } else if (ch == '\\') {
            p->esc = 1;
        } else if (ch == '"') {
            p->state = S_AFTER_VALUE;
        } else {
            tok_add(p, (char)ch);
        }
        return;
    case S_AFTER_VALUE:
    after_value:
        if (is_ows(ch)) {
            p->state = S_AFTER_VALUE;
            return;
        }
        if (ch == ';') {
            end_param(p);
            p->state = S_BEFORE_PARAM;
        } else if (ch == ',') {
            end_param(p);
            end_offer(p);
            p->state = S_BEFORE_EXT;
        } else {
            syntax_error(p);
        }
        return;
    case S_SKIP:
        if (p->quoted) {
            if (p->esc)
                p->esc = 0;
            else if (ch == '\\')
                p->esc = 1;
            else if (ch == '"')
                p->quoted = 0;
        } else if (ch == '"') {
            p->quoted = 1;
        } else if (ch == ',') {
            end_offer(p); /* bad: declined */
            p->state = S_BEFORE_EXT;
        }
        return;
    default:
        return syntax_error(p);
    }
}

void ws_ext_feed(struct ws_ext_parser *p, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        step(p, (unsigned char)s[i]);
}

void ws_ext_end_field(struct ws_ext_parser *p)
{
    switch (p->state) {
    case S_BEFORE_EXT:
        break;
    case S_EXT:
        end_ext_name(p);
        end_offer(p);
        break;
    case S_AFTER_EXT:
        end_offer(p);
        break;
    case S_PARAM:
        end_param_name(p);
        /* fall through */
    case S_AFTER_PARAM:
    case S_VALUE:
    case S_AFTER_VALUE:
        end_param(p);
        end_offer(p);
        break;
    default: /* cut short after ';' or '=', inside quotes, or after an error */
        p->bad = 1;
        end_offer(p);
        break;
    }
    p->state = S_BEFORE_EXT;
    p->quoted = 0;
    p->esc = 0;
}

int ws_ext_finish(struct ws_ext_parser *p, struct pmd_params *out)
{
    ws_ext_end_field(p);
    if (!p->chosen)
        return 0;
    *out = p->out;
    return 1;
}

int ws_ext_answer(char *out, size_t cap, const struct pmd_params *prm)
{
    char sb[40] = "", cb[40] = "";
    if (prm->server_window_offered || prm->server_window_bits < 15)
        snprintf(sb, sizeof(sb), "; server_max_window_bits=%u", prm->server_window_bits);
    if (prm->client_window_bits)
        snprintf(cb, sizeof(cb), "; client_max_window_bits=%u", prm->client_window_bits);
    int n = snprintf(out, cap,
                     "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
                     "client_no_context_takeover%s%s\r\n",
                     sb, cb);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return n;
}
