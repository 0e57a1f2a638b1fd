/* Private to lib/rules-*.c: the compiled form of a rule, the lexer and the diagnostics
 * helpers. Nothing here is API; rules.h is. */
#pragma once

#include "rules.h"

/* Attributes in canonical (formatter) order. */
typedef enum UsbvmAttrKind {
    USBVM_ATTR_ID,
    USBVM_ATTR_SERIAL,
    USBVM_ATTR_NAME,
    USBVM_ATTR_VENDOR_NAME,
    USBVM_ATTR_VIA_PORT,
    USBVM_ATTR_WITH_INTERFACE,
    USBVM_ATTR_WITH_CONNECT_TYPE,
    USBVM_ATTR_FS_TYPE,
    USBVM_ATTR_FS_LABEL,
    USBVM_ATTR_FS_UUID,
    USBVM_ATTR_SIZE,
    _USBVM_ATTR_MAX,
} UsbvmAttrKind;

typedef enum UsbvmSetOp {
    USBVM_SETOP_ALL_OF,
    USBVM_SETOP_ONE_OF,
    USBVM_SETOP_NONE_OF,
    USBVM_SETOP_EQUALS,
    USBVM_SETOP_EQUALS_ORDERED,
    USBVM_SETOP_MATCH_ALL,
    _USBVM_SETOP_MAX,
} UsbvmSetOp;

typedef enum UsbvmCmpOp {
    USBVM_CMP_LT,
    USBVM_CMP_LE,
    USBVM_CMP_GT,
    USBVM_CMP_GE,
    USBVM_CMP_EQ,
    USBVM_CMP_NE,
    _USBVM_CMP_MAX,
} UsbvmCmpOp;

typedef struct UsbvmIdValue {
    uint16_t vid, pid;
    bool any_vid, any_pid; /* "*:*" has both; "0781:*" only any_pid */
} UsbvmIdValue;

typedef struct UsbvmIfaceValue {
    uint8_t cls, subclass, protocol;
    bool any_subclass, any_protocol;
} UsbvmIfaceValue;

typedef union UsbvmAttrValue {
    char *str; /* string attributes: unescaped bytes, NUL-free */
    UsbvmIdValue id;
    UsbvmIfaceValue iface;
} UsbvmAttrValue;

typedef struct UsbvmSizeCmp {
    UsbvmCmpOp op;
    uint64_t bytes;
} UsbvmSizeCmp;

typedef struct UsbvmAttr {
    UsbvmAttrKind kind;
    UsbvmSetOp op;
    UsbvmAttrValue *values;
    size_t n_values;
    UsbvmSizeCmp size[2]; /* USBVM_ATTR_SIZE only */
    size_t n_size;
    unsigned line, column; /* of the attribute keyword */
} UsbvmAttr;

struct UsbvmRule {
    UsbvmTarget target;
    char *domain; /* attach only */
    UsbvmAttachSpec spec;
    char *cache, *io; /* owned; spec.cache/spec.io point here */
    UsbvmAttr *attrs[_USBVM_ATTR_MAX];
    char *file;
    unsigned line, column;
};

struct UsbvmRuleset {
    UsbvmRule **rules;
    size_t n, cap;
};

const char *usbvm_attr_name(UsbvmAttrKind k);
bool usbvm_attr_is_string(UsbvmAttrKind k);
bool usbvm_attr_is_storage(UsbvmAttrKind k);
/* The operator a value or a set without operator gets: equals, as in USBGuard, except for the
 * block-device attributes, where it is one-of ("any block device has it"). */
UsbvmSetOp usbvm_attr_default_op(UsbvmAttrKind k);
const char *usbvm_setop_name(UsbvmSetOp op);
const char *usbvm_cmpop_name(UsbvmCmpOp op);

void usbvm_attr_free(UsbvmAttr *a);
void usbvm_rule_free(UsbvmRule *r);
void usbvm_ruleset_push(UsbvmRuleset *rs, UsbvmRule *r);
UsbvmRuleset *usbvm_ruleset_new(void);

/* Parses text into rs (rules-parser.c); returns the number of errors added to diags. */
size_t usbvm_rules_parse_into(const char *name, const char *text, size_t len, UsbvmRuleset *rs,
                              UsbvmRuleDiags *diags);

/* ---- diagnostics ---- */
void usbvm_rule_diag_add(UsbvmRuleDiags *d, bool warning, const char *file, const char *text,
                         unsigned line, unsigned column, const char *fmt, ...) _printf_(7, 8);

/* ---- lexer ---- */
typedef enum UsbvmTokType {
    USBVM_TOK_EOF,
    USBVM_TOK_EOL, /* end of a logical line (a rule) */
    USBVM_TOK_WORD,
    USBVM_TOK_STRING,
    USBVM_TOK_LBRACE,
    USBVM_TOK_RBRACE,
    USBVM_TOK_CMP,
    USBVM_TOK_ERROR,
} UsbvmTokType;

typedef struct UsbvmToken {
    UsbvmTokType type;
    unsigned line, column; /* 1-based, bytes */
    const char *start;     /* raw text in the input */
    size_t len;
    char *str;         /* USBVM_TOK_STRING: the unescaped value (owned by the token) */
    UsbvmCmpOp cmp;    /* USBVM_TOK_CMP */
    bool space_before; /* blank (or a continuation) between this token and the previous */
    char message[160]; /* USBVM_TOK_ERROR: what went wrong, at line:column */
} UsbvmToken;

typedef struct UsbvmLexer {
    const char *text;
    size_t pos, len;
    unsigned line, column;
    bool at_eol; /* the previous token was EOL (or nothing yet) */
} UsbvmLexer;

void usbvm_lexer_init(UsbvmLexer *lx, const char *text, size_t len);
/* Fills tok (tok->str is freed by usbvm_token_clear). */
void usbvm_lexer_next(UsbvmLexer *lx, UsbvmToken *tok);
/* After an error: skips to the end of the current logical line. */
void usbvm_lexer_skip_line(UsbvmLexer *lx);
void usbvm_token_clear(UsbvmToken *tok);
bool usbvm_token_is(const UsbvmToken *tok, const char *word);

/* ---- formatting helpers ---- */
void usbvm_rules_format_string(UsbvmBuf *b, const char *s);
void usbvm_rules_format_size(UsbvmBuf *b, uint64_t bytes);
void usbvm_rules_format_attr(UsbvmBuf *b, const UsbvmAttr *a);
/* Parses "8G", "64GiB", "1.5T", "512"; -EINVAL/-ERANGE. */
int usbvm_rules_parse_size(const char *s, size_t n, uint64_t *ret);
