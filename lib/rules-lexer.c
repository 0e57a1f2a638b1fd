/* The rules lexer: turns text into words, strings, braces and comparison operators, with
 * exact line:column positions. Comments and "\" line continuations are handled here, so the
 * parser sees one rule per logical line. */
#include "rules-internal.h"

#include <errno.h>
#include <string.h>

void usbvm_lexer_init(UsbvmLexer *lx, const char *text, size_t len)
{
    *lx = (UsbvmLexer){ .text = text, .len = len, .line = 1, .column = 1, .at_eol = true };
}

void usbvm_token_clear(UsbvmToken *tok)
{
    free(tok->str);
    tok->str = NULL;
}

bool usbvm_token_is(const UsbvmToken *tok, const char *word)
{
    size_t n = strlen(word);
    return tok->type == USBVM_TOK_WORD && tok->len == n && memcmp(tok->start, word, n) == 0;
}

static int peekc(const UsbvmLexer *lx, size_t off)
{
    return lx->pos + off < lx->len ? (unsigned char)lx->text[lx->pos + off] : -1;
}

static void advance(UsbvmLexer *lx, size_t n)
{
    for (size_t i = 0; i < n && lx->pos < lx->len; i++) {
        if (lx->text[lx->pos] == '\n') {
            lx->line++;
            lx->column = 1;
        } else
            lx->column++;
        lx->pos++;
    }
}

static bool is_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* A backslash, optional blanks, then a newline (or the end of the text): a continuation.
 * Returns the number of bytes it spans, 0 when this is not one. */
static size_t continuation_len(const UsbvmLexer *lx)
{
    if (peekc(lx, 0) != '\\')
        return 0;
    size_t i = 1;
    while (is_blank(peekc(lx, i)))
        i++;
    if (peekc(lx, i) == '\n')
        return i + 1;
    if (peekc(lx, i) < 0) /* a file that ends in a continuation */
        return i;
    return 0;
}

static bool is_word_char(int c)
{
    if (c < 0 || c <= ' ' || c == 0x7f)
        return false;
    return !strchr("\"{}#<>=!\\'", c);
}

static void set_error(UsbvmToken *tok, unsigned line, unsigned column, const char *fmt, ...)
    _printf_(4, 5);
static void set_error(UsbvmToken *tok, unsigned line, unsigned column, const char *fmt, ...)
{
    va_list ap;
    usbvm_token_clear(tok);
    tok->type = USBVM_TOK_ERROR;
    tok->line = line;
    tok->column = column;
    va_start(ap, fmt);
    vsnprintf(tok->message, sizeof(tok->message), fmt, ap);
    va_end(ap);
}

/* A string in double quotes. USBGuard's escapes, as its unescape accepts them: \" \\ and
 * \xHH. Everything else after a backslash is an error; a string ends on its line. */
static void lex_string(UsbvmLexer *lx, UsbvmToken *tok)
{
    UsbvmBuf b = { 0 };
    unsigned line = lx->line, col = lx->column;
    advance(lx, 1);
    for (;;) {
        int c = peekc(lx, 0);
        if (c < 0 || c == '\n' || c == '\r') {
            usbvm_buf_free(&b);
            set_error(tok, lx->line, lx->column,
                      "unterminated string: expected '\"' to close the string opened at "
                      "column %u",
                      col);
            return;
        }
        if (c == '"') {
            advance(lx, 1);
            break;
        }
        if (c == '\\') {
            unsigned ecol = lx->column;
            int e = peekc(lx, 1);
            if (e == '"' || e == '\\') {
                char ch = (char)e;
                usbvm_buf_append(&b, &ch, 1);
                advance(lx, 2);
                continue;
            }
            if (e == 'x') {
                int h1 = usbvm_hexval(peekc(lx, 2)), h2 = h1 >= 0 ? usbvm_hexval(peekc(lx, 3)) : -1;
                if (h1 < 0 || h2 < 0) {
                    usbvm_buf_free(&b);
                    set_error(tok, line, ecol,
                              "invalid escape: expected two hexadecimal digits after '\\x'");
                    return;
                }
                if (h1 == 0 && h2 == 0) {
                    usbvm_buf_free(&b);
                    set_error(tok, line, ecol,
                              "invalid escape: '\\x00' (NUL) cannot appear "
                              "in a USB string");
                    return;
                }
                char ch = (char)(h1 * 16 + h2);
                usbvm_buf_append(&b, &ch, 1);
                advance(lx, 4);
                continue;
            }
            usbvm_buf_free(&b);
            if (e < 0 || e == '\n')
                set_error(tok, line, ecol,
                          "invalid escape: a string cannot continue on the next line");
            else if (e >= 0x21 && e < 0x7f)
                set_error(tok, line, ecol, "invalid escape '\\%c': expected \\\", \\\\ or \\xHH",
                          (char)e);
            else
                set_error(tok, line, ecol, "invalid escape: expected \\\", \\\\ or \\xHH");
            return;
        }
        if (c == 0) {
            usbvm_buf_free(&b);
            set_error(tok, lx->line, lx->column, "NUL byte in a string; write it as \\xHH");
            return;
        }
        char ch = (char)c;
        usbvm_buf_append(&b, &ch, 1);
        advance(lx, 1);
    }
    tok->type = USBVM_TOK_STRING;
    tok->str = usbvm_buf_steal(&b);
    tok->len = lx->pos - (size_t)(tok->start - lx->text);
    (void)line;
}

/* Blanks, comments and continuations before a token; returns whether there were any. */
static bool skip_space(UsbvmLexer *lx)
{
    bool space = false;
    for (;;) {
        int c = peekc(lx, 0);
        size_t cl;
        if (is_blank(c)) {
            advance(lx, 1);
            space = true;
        } else if (c == '#') {
            /* A comment runs to the end of its physical line; a backslash in it does not
             * continue anything. */
            while (peekc(lx, 0) >= 0 && peekc(lx, 0) != '\n')
                advance(lx, 1);
        } else if ((cl = continuation_len(lx)) > 0) {
            advance(lx, cl);
            space = true;
        } else
            return space;
    }
}

static void lex_cmp(UsbvmLexer *lx, UsbvmToken *tok, int c)
{
    int n = peekc(lx, 1);
    tok->type = USBVM_TOK_CMP;
    if (n == '=') {
        tok->len = 2;
        tok->cmp = c == '<'   ? USBVM_CMP_LE
                   : c == '>' ? USBVM_CMP_GE
                   : c == '=' ? USBVM_CMP_EQ
                              : USBVM_CMP_NE;
    } else if (c == '<' || c == '>') {
        tok->len = 1;
        tok->cmp = c == '<' ? USBVM_CMP_LT : USBVM_CMP_GT;
    } else {
        set_error(tok, lx->line, lx->column,
                  "unexpected '%c': comparisons are <, <=, >, >=, == and !=", (char)c);
        advance(lx, 1);
        return;
    }
    advance(lx, tok->len);
}

static void lex_unexpected(UsbvmLexer *lx, UsbvmToken *tok, int c)
{
    if (c == '\\')
        set_error(tok, lx->line, lx->column,
                  "unexpected '\\': a backslash continues a rule only at the end of a line, "
                  "and escapes only inside a string");
    else if (c == '\'')
        set_error(tok, lx->line, lx->column,
                  "unexpected \"'\": strings are written in double quotes");
    else if (c >= 0x21 && c < 0x7f)
        set_error(tok, lx->line, lx->column, "unexpected '%c'", (char)c);
    else
        set_error(tok, lx->line, lx->column, "unexpected control character 0x%02x", c);
    advance(lx, 1);
}

void usbvm_lexer_next(UsbvmLexer *lx, UsbvmToken *tok)
{
    usbvm_token_clear(tok);
    tok->message[0] = '\0';
    bool space = skip_space(lx);
    tok->line = lx->line;
    tok->column = lx->column;
    tok->start = lx->text + lx->pos;
    tok->len = 0;
    tok->space_before = space;

    int c = peekc(lx, 0);
    if (c < 0) {
        /* The last rule may lack a final newline: report one EOL before EOF. */
        tok->type = lx->at_eol ? USBVM_TOK_EOF : USBVM_TOK_EOL;
        lx->at_eol = true;
        return;
    }
    if (c == '\n') {
        tok->type = USBVM_TOK_EOL;
        advance(lx, 1);
        lx->at_eol = true;
        return;
    }
    lx->at_eol = false;

    if (c == '"') {
        lex_string(lx, tok);
    } else if (c == '{' || c == '}') {
        tok->type = c == '{' ? USBVM_TOK_LBRACE : USBVM_TOK_RBRACE;
        tok->len = 1;
        advance(lx, 1);
    } else if (c == '<' || c == '>' || c == '=' || c == '!') {
        lex_cmp(lx, tok, c);
    } else if (is_word_char(c)) {
        size_t start = lx->pos;
        while (is_word_char(peekc(lx, 0)))
            advance(lx, 1);
        tok->type = USBVM_TOK_WORD;
        tok->len = lx->pos - start;
    } else {
        lex_unexpected(lx, tok, c);
    }
}

void usbvm_lexer_skip_line(UsbvmLexer *lx)
{
    if (lx->at_eol)
        return;
    for (;;) {
        int c = peekc(lx, 0);
        size_t cl;
        if (c < 0)
            return;
        if (c == '\n') {
            advance(lx, 1);
            lx->at_eol = true;
            return;
        }
        if ((cl = continuation_len(lx)) > 0)
            advance(lx, cl);
        else
            advance(lx, 1);
    }
}
