/* ttalloc native protocol, version 1.0 — message layouts.
 *
 * Normative description: recorder/PROTOCOL.md. All integers little-endian;
 * all structs packed (no implicit padding); every pad/reserved field is 0.
 * Intern ids are implicit and sequential per connection: string 0 = "",
 * the i-th STRINGS record gets id i+1; frames start at 0; stack 0 = the empty
 * stack, the i-th STACKS record gets id i+1.
 */
#ifndef TTALLOC_PROTOCOL_H
#define TTALLOC_PROTOCOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TTALLOC_MAGIC 0x4C415454u /* "TTAL" */
#define TTALLOC_VERSION_MAJOR 1
#define TTALLOC_VERSION_MINOR 1 /* 1.1: ALLOC_REFUSED, BUFFER_ALLOC2 */
#define TTALLOC_MAX_PAYLOAD (1u << 20)
#define TTALLOC_LOCAL_ID_LIMIT (1ull << 40) /* buffer / program ids must be below */
#define TTALLOC_SOCKET_ENV "TTALLOC_SOCKET"

enum ttalloc_frame_type {
    TTALLOC_FRAME_HELLO = 1,
    TTALLOC_FRAME_STRINGS = 2, /* count x { u32 len; u8 utf8[len]; } */
    TTALLOC_FRAME_FRAMES = 3,  /* count x ttalloc_frame_def */
    TTALLOC_FRAME_STACKS = 4,  /* count x ttalloc_stack_def */
    TTALLOC_FRAME_EVENTS = 5,  /* count x (ttalloc_event_header + body) */
    TTALLOC_FRAME_GOODBYE = 6, /* ttalloc_goodbye */
};

enum ttalloc_event_kind {
    TTALLOC_EV_DEVICE_OPEN = 2,
    TTALLOC_EV_DEVICE_CLOSE = 3,
    TTALLOC_EV_BUFFER_ALLOC = 4,
    TTALLOC_EV_BUFFER_FREE = 5,
    TTALLOC_EV_CB_ALLOC = 6,
    TTALLOC_EV_CB_FREE_ALL = 7,
    TTALLOC_EV_PROGRAM_LOAD = 8,
    TTALLOC_EV_PROGRAM_UNLOAD = 9,
    TTALLOC_EV_TRACE_CAPTURE = 10,
    TTALLOC_EV_TRACE_RELEASE = 11,
    TTALLOC_EV_OP_BEGIN = 12,
    TTALLOC_EV_OP_END = 13,
    TTALLOC_EV_MARKER = 14,
    TTALLOC_EV_ALLOC_REFUSED = 15, /* 1.1: tt-metal refused an allocation */
    TTALLOC_EV_BUFFER_ALLOC2 = 16, /* 1.1: BUFFER_ALLOC + per_bank_size, label */
};

enum ttalloc_buffer_type { TTALLOC_DRAM = 0, TTALLOC_L1 = 1, TTALLOC_SYSTEM_MEMORY = 2, TTALLOC_L1_SMALL = 3, TTALLOC_TRACE = 4 };
enum ttalloc_layout { TTALLOC_INTERLEAVED = 0, TTALLOC_HEIGHT_SHARDED = 1, TTALLOC_WIDTH_SHARDED = 2, TTALLOC_BLOCK_SHARDED = 3 };
enum ttalloc_arch { TTALLOC_ARCH_UNKNOWN = 0, TTALLOC_ARCH_GRAYSKULL = 1, TTALLOC_ARCH_WORMHOLE_B0 = 2, TTALLOC_ARCH_BLACKHOLE = 3, TTALLOC_ARCH_QUASAR = 4 };

/* BUFFER_ALLOC flags */
#define TTALLOC_ALLOC_HAS_ADDRESS 0x01
#define TTALLOC_ALLOC_HAS_PAGE_SIZE 0x02
#define TTALLOC_ALLOC_HAS_NUM_CORES 0x04
/* BUFFER_ALLOC2 flags: the three above, and */
#define TTALLOC_ALLOC_HAS_PER_BANK_SIZE 0x08
#define TTALLOC_ALLOC_HAS_LABEL 0x10
/* ALLOC_REFUSED flags */
#define TTALLOC_REFUSED_HAS_PAGE_SIZE 0x01
#define TTALLOC_REFUSED_HAS_NUM_CORES 0x02
#define TTALLOC_REFUSED_HAS_PER_BANK_SIZE 0x04
/* CB_ALLOC flags */
#define TTALLOC_CB_HAS_CORES 0x01
#define TTALLOC_CB_GLOBALLY_ALLOCATED 0x02
/* GOODBYE flags */
#define TTALLOC_GOODBYE_HAS_STATUS 0x01

/* DEVICE_OPEN present_mask bit i <-> value[i] */
enum ttalloc_config_field {
    TTALLOC_CFG_DRAM_BANKS = 0,
    TTALLOC_CFG_DRAM_BANK_SIZE = 1,
    TTALLOC_CFG_DRAM_ALIGNMENT = 2,
    TTALLOC_CFG_DRAM_UNRESERVED_BASE = 3,
    TTALLOC_CFG_L1_BANKS = 4,
    TTALLOC_CFG_L1_BANK_SIZE = 5,
    TTALLOC_CFG_L1_ALIGNMENT = 6,
    TTALLOC_CFG_L1_UNRESERVED_BASE = 7,
    TTALLOC_CFG_L1_SMALL_SIZE = 8,
    TTALLOC_CFG_TRACE_REGION_SIZE = 9, /* per DRAM bank */
    TTALLOC_CFG_WORKER_L1_SIZE = 10,
    TTALLOC_CFG_COUNT = 11,
};

#pragma pack(push, 1)

typedef struct {
    uint32_t len;   /* payload bytes after this header, <= TTALLOC_MAX_PAYLOAD */
    uint16_t type;  /* ttalloc_frame_type */
    uint16_t flags; /* 0 */
    uint32_t count; /* records in the payload */
} ttalloc_frame_header;

/* HELLO payload: this fixed part, then str client_name, str client_version,
 * u32 argc, argc x str (str = u32 len + UTF-8 bytes). */
typedef struct {
    uint32_t magic; /* TTALLOC_MAGIC */
    uint16_t version_major;
    uint16_t version_minor;
    uint32_t pid;
    uint32_t ppid;
    uint64_t ts; /* ns since the Unix epoch */
} ttalloc_hello_fixed;

typedef struct {
    uint32_t function; /* string id */
    uint32_t file;     /* string id */
    uint32_t line;
} ttalloc_frame_def;

typedef struct {
    uint32_t parent; /* stack id, < the new stack's id */
    uint32_t frame;  /* frame id */
} ttalloc_stack_def;

typedef struct {
    uint8_t kind;  /* ttalloc_event_kind */
    uint8_t flags;
    uint16_t reserved; /* 0 */
    uint32_t device;
    uint64_t ts; /* ns since the Unix epoch */
} ttalloc_event_header;

typedef struct {
    ttalloc_event_header h;
    uint8_t arch;
    uint8_t pad[3];
    uint32_t present_mask;
    uint64_t value[TTALLOC_CFG_COUNT];
} ttalloc_ev_device_open;

typedef struct { ttalloc_event_header h; } ttalloc_ev_plain; /* DEVICE_CLOSE, CB_FREE_ALL, OP_END */

typedef struct {
    ttalloc_event_header h;
    uint64_t buffer; /* client id, unique per connection, < 2^40 */
    uint64_t size;
    uint64_t address;
    uint64_t page_size;
    uint32_t num_cores;
    uint32_t site; /* stack id */
    uint8_t buffer_type;
    uint8_t layout;
    uint16_t pad;
} ttalloc_ev_buffer_alloc;

/* Protocol 1.1: sent instead of BUFFER_ALLOC when a new field is known. */
typedef struct {
    ttalloc_event_header h;
    uint64_t buffer;
    uint64_t size;
    uint64_t address;
    uint64_t page_size;
    uint32_t num_cores;
    uint32_t site;
    uint8_t buffer_type;
    uint8_t layout;
    uint16_t pad;
    uint64_t per_bank_size; /* tt-metal's max_size_per_bank: bytes reserved in each bank */
    uint32_t label_string;  /* e.g. "L1 tensor [1,1,32,256] bfloat16 TILE" */
    uint32_t pad2;
} ttalloc_ev_buffer_alloc2;

/* Protocol 1.1: an allocation tt-metal refused ("Out of Memory: ..."). */
typedef struct {
    ttalloc_event_header h;
    uint64_t size;
    uint64_t page_size;
    uint64_t per_bank_size;
    uint32_t num_cores;
    uint32_t site;
    uint32_t message_string; /* tt-metal's message */
    uint8_t buffer_type;
    uint8_t layout;
    uint16_t pad;
} ttalloc_ev_alloc_refused;

typedef struct {
    ttalloc_event_header h;
    uint64_t buffer;
    uint32_t site;
} ttalloc_ev_buffer_free;

typedef struct {
    ttalloc_event_header h;
    uint64_t address;
    uint64_t size; /* per core */
    uint32_t cores;
    uint32_t site;
} ttalloc_ev_cb_alloc;

typedef struct {
    ttalloc_event_header h;
    uint64_t program;
    uint64_t binary_size;
    uint32_t site;
} ttalloc_ev_program_load;

typedef struct {
    ttalloc_event_header h;
    uint64_t program;
} ttalloc_ev_program_unload;

typedef struct {
    ttalloc_event_header h;
    uint32_t trace_id;
    uint64_t size;
    uint32_t site;
} ttalloc_ev_trace_capture;

typedef struct {
    ttalloc_event_header h;
    uint32_t value; /* TRACE_RELEASE: trace_id; OP_BEGIN: name string; MARKER: label string */
} ttalloc_ev_u32;

typedef struct {
    uint32_t flags; /* TTALLOC_GOODBYE_HAS_STATUS */
    int32_t status; /* exit code or -signal */
} ttalloc_goodbye;

#pragma pack(pop)

#ifdef __cplusplus
}
#endif

#if defined(__cplusplus) && __cplusplus >= 201103L
static_assert(sizeof(ttalloc_frame_header) == 12, "frame header");
static_assert(sizeof(ttalloc_event_header) == 16, "event header");
static_assert(sizeof(ttalloc_ev_device_open) == 16 + 96, "device_open");
static_assert(sizeof(ttalloc_ev_buffer_alloc) == 16 + 44, "buffer_alloc");
static_assert(sizeof(ttalloc_ev_buffer_alloc2) == 16 + 60, "buffer_alloc2");
static_assert(sizeof(ttalloc_ev_alloc_refused) == 16 + 40, "alloc_refused");
static_assert(sizeof(ttalloc_ev_buffer_free) == 16 + 12, "buffer_free");
static_assert(sizeof(ttalloc_ev_cb_alloc) == 16 + 24, "cb_alloc");
static_assert(sizeof(ttalloc_ev_program_load) == 16 + 20, "program_load");
static_assert(sizeof(ttalloc_ev_program_unload) == 16 + 8, "program_unload");
static_assert(sizeof(ttalloc_ev_trace_capture) == 16 + 16, "trace_capture");
static_assert(sizeof(ttalloc_ev_u32) == 16 + 4, "u32 events");
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(ttalloc_frame_header) == 12, "frame header");
_Static_assert(sizeof(ttalloc_ev_device_open) == 16 + 96, "device_open");
_Static_assert(sizeof(ttalloc_ev_buffer_alloc) == 16 + 44, "buffer_alloc");
_Static_assert(sizeof(ttalloc_ev_cb_alloc) == 16 + 24, "cb_alloc");
_Static_assert(sizeof(ttalloc_ev_trace_capture) == 16 + 16, "trace_capture");
#endif

#endif /* TTALLOC_PROTOCOL_H */
