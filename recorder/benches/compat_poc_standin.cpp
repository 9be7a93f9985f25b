// A stand-in for tt-metal's allocation_server_poc, for the compat-ingest
// benchmark (compat_ratio.sh) on machines without tt-metal: the real server
// links TT::Metalium only to detect devices at start-up. This file does the
// same work per message as the server's source does (allocation_server_poc.cpp
// on tt-metal's memory_monitor_smi branch; protocol in
// ../shared/reference/tt-metal-memory.md, section 2):
//   - one thread per connection, one blocking recv() of 112 bytes per message;
//   - a registry keyed by (device_id, buffer_id), hashed as the server hashes
//     it, with a reference count and the allocation's steady_clock time,
//     under one mutex; per-device atomic counters by buffer type;
//   - the server's own log line per ALLOC / FREE ("✓ [PID p] Allocated N
//     bytes of L1 on device 0 (buffer_id=0x...)", "✗ ... FINAL)"), written
//     with std::endl to an unbuffered stdout (the server calls
//     setbuf(stdout, NULL), so each << is a write()), which the benchmark
//     sends to a file;
//   - QUERY answered with the device's four counters; DUMP_REMAINING prints
//     the live count.
// Up to session 30 the lines were shorter (no mark, no type name, decimal
// ids): two write()s fewer per ALLOC, and the stand-in 9% faster than this.
// Build: g++ -O2 -pthread -o poc_standin compat_poc_standin.cpp
// Usage: poc_standin SOCKET
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <unordered_map>

struct __attribute__((packed)) Wire {
    uint8_t type;
    uint8_t pad1[3];
    int32_t device_id;
    uint64_t size;
    uint8_t buffer_type;
    uint8_t pad2[3];
    int32_t process_id;
    uint64_t buffer_id;
    uint64_t timestamp;
    uint64_t counters[4];
    uint64_t totals[2];
    uint32_t info[6];
};
static_assert(sizeof(Wire) == 112, "112-byte message");

struct Entry {
    uint64_t buffer_id;
    int device_id;
    uint64_t size;
    uint8_t buffer_type;
    int32_t owner;
    std::chrono::steady_clock::time_point since;
    int refs;
};

// The server's key: the device and the buffer id, hashed as a pair.
struct Key {
    int device_id;
    uint64_t buffer_id;
    bool operator==(const Key& o) const { return device_id == o.device_id && buffer_id == o.buffer_id; }
};
struct KeyHash {
    size_t operator()(const Key& k) const {
        return std::hash<int>()(k.device_id) ^ (std::hash<uint64_t>()(k.buffer_id) << 1);
    }
};

// Per-device counters are atomics in the server (QUERY reads them unlocked).
struct Counters {
    std::atomic<uint64_t> bytes[5];
    std::atomic<uint64_t> buffers{0};
};

static const char* const TYPE_NAMES[] = {"DRAM", "L1", "SYSTEM_MEMORY", "L1_SMALL", "TRACE"};
static std::mutex registry_lock;
static std::unordered_map<Key, Entry, KeyHash> registry;
static Counters counters[8];
static std::atomic<bool> running{true};

// The server folds SYSTEM_MEMORY into L1_SMALL's counter.
static std::atomic<uint64_t>& counter_of(int device, uint8_t type) {
    return counters[device & 7].bytes[type == 2 ? 3 : type];
}

static void on_alloc(const Wire& m) {
    std::lock_guard<std::mutex> g(registry_lock);
    if (m.buffer_type > 4) {
        std::cerr << "\u26a0 [PID " << m.process_id << "] Invalid buffer_type " << (int)m.buffer_type << " for buffer "
                  << m.buffer_id << " on device " << m.device_id << std::endl;
        return;
    }
    Key key{m.device_id, m.buffer_id};
    auto it = registry.find(key);
    if (it != registry.end()) {
        it->second.refs++;
        std::cout << "\u2713 [PID " << m.process_id << "] Allocated " << m.size << " bytes of "
                  << TYPE_NAMES[m.buffer_type] << " on device " << m.device_id << " (buffer_id=0x" << std::hex
                  << m.buffer_id << std::dec << ", ref_count=" << it->second.refs << ")" << std::endl;
        return;
    }
    registry[key] = Entry{m.buffer_id, m.device_id, m.size, m.buffer_type, m.process_id,
                          std::chrono::steady_clock::now(), 1};
    counters[m.device_id & 7].buffers++;
    counter_of(m.device_id, m.buffer_type) += m.size;
    std::cout << "\u2713 [PID " << m.process_id << "] Allocated " << m.size << " bytes of " << TYPE_NAMES[m.buffer_type]
              << " on device " << m.device_id << " (buffer_id=0x" << std::hex << m.buffer_id << std::dec << ")"
              << std::endl;
}

static void on_free(const Wire& m) {
    std::lock_guard<std::mutex> g(registry_lock);
    auto it = registry.find(Key{m.device_id, m.buffer_id});
    if (it == registry.end()) {
        std::cout << "\u26a0 [PID " << m.process_id << "] Deallocation for unknown buffer 0x" << std::hex << m.buffer_id
                  << std::dec << " on device " << m.device_id << " (allocated before tracking started)" << std::endl;
        return;
    }
    Entry& e = it->second;
    if (--e.refs > 0) {
        std::cout << "\u2717 [PID " << e.owner << "] Freed buffer 0x" << std::hex << m.buffer_id << std::dec
                  << " on device " << e.device_id << " (" << e.size << " bytes, ref_count=" << e.refs << " remaining)"
                  << std::endl;
        return;
    }
    counters[e.device_id & 7].buffers--;
    counter_of(e.device_id, e.buffer_type) -= e.size;
    std::cout << "\u2717 [PID " << e.owner << "] Freed buffer 0x" << std::hex << m.buffer_id << std::dec << " on device "
              << e.device_id << " (" << e.size << " bytes, FINAL)" << std::endl;
    registry.erase(it);
}

static void serve(int fd) {
    Wire m;
    while (running && recv(fd, &m, sizeof m, 0) > 0) {
        switch (m.type) {
            case 1: on_alloc(m); break;
            case 2: on_free(m); break;
            case 3: {
                Wire r;
                memset(&r, 0, sizeof r);
                r.type = 4;
                r.device_id = m.device_id;
                {
                    std::lock_guard<std::mutex> g(registry_lock);
                    const Counters& c = counters[m.device_id & 7];
                    r.counters[0] = c.bytes[0];
                    r.counters[1] = c.bytes[1];
                    r.counters[2] = c.bytes[3];
                    r.counters[3] = c.bytes[4];
                }
                send(fd, &r, sizeof r, 0);
                break;
            }
            case 5: {
                std::lock_guard<std::mutex> g(registry_lock);
                std::cout << "Total tracked allocations: " << registry.size() << std::endl;
                break;
            }
            default: std::cerr << "Unknown message type: " << (int)m.type << std::endl;
        }
    }
    close(fd);
}

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
        return 2;
    }
    setbuf(stdout, NULL);
    setbuf(stderr, NULL);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    unlink(argv[1]);
    if (bind(s, (sockaddr*)&a, sizeof a) != 0 || listen(s, 128) != 0) {
        perror("bind/listen");
        return 1;
    }
    for (;;) {
        int c = accept(s, nullptr, nullptr);
        if (c >= 0) std::thread(serve, c).detach();
    }
}
