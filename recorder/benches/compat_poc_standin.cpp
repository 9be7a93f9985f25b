// A stand-in for tt-metal's allocation_server_poc, for the compat-ingest
// benchmark (compat_ratio.sh) on machines without tt-metal: the real server
// links TT::Metalium only to detect devices at start-up. This file does the
// same work per message as the server does (written from its documented
// behaviour in ../shared/reference/tt-metal-memory.md, section 2):
//   - one thread per connection, one blocking recv() of 112 bytes per message;
//   - a registry keyed by (device_id, buffer_id) with a reference count under
//     one mutex, per-device byte counters by buffer type;
//   - one log line per ALLOC / FREE written with std::endl to an unbuffered
//     stdout (the server calls setbuf(stdout, NULL)), which the benchmark
//     sends to a file;
//   - QUERY answered with the device's four counters; DUMP_REMAINING prints
//     the live count.
// Build: g++ -O2 -pthread -o poc_standin compat_poc_standin.cpp
// Usage: poc_standin SOCKET
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
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
    uint64_t size;
    uint8_t buffer_type;
    int32_t owner;
    int refs;
};

static std::mutex registry_lock;
static std::unordered_map<uint64_t, Entry> registry;  // key: device << 48 ^ buffer_id
static uint64_t counters[8][5];

static uint64_t key_of(const Wire& m) { return (uint64_t)(uint32_t)m.device_id << 48 ^ m.buffer_id; }

static void on_alloc(const Wire& m) {
    std::lock_guard<std::mutex> g(registry_lock);
    if (m.buffer_type > 4 || m.device_id < 0 || m.device_id >= 8) {
        std::cerr << "invalid message for buffer " << m.buffer_id << std::endl;
        return;
    }
    auto it = registry.find(key_of(m));
    if (it != registry.end()) {
        it->second.refs++;
        std::cout << "[PID " << m.process_id << "] Allocated " << m.size << " bytes on device " << m.device_id
                  << " (buffer_id=" << m.buffer_id << ", ref_count=" << it->second.refs << ")" << std::endl;
        return;
    }
    registry[key_of(m)] = Entry{m.size, m.buffer_type, m.process_id, 1};
    counters[m.device_id][m.buffer_type] += m.size;
    std::cout << "[PID " << m.process_id << "] Allocated " << m.size << " bytes on device " << m.device_id
              << " (buffer_id=" << m.buffer_id << ")" << std::endl;
}

static void on_free(const Wire& m) {
    std::lock_guard<std::mutex> g(registry_lock);
    auto it = registry.find(key_of(m));
    if (it == registry.end()) {
        std::cout << "[PID " << m.process_id << "] Deallocation for unknown buffer " << m.buffer_id << " on device "
                  << m.device_id << std::endl;
        return;
    }
    if (--it->second.refs > 0) {
        std::cout << "[PID " << it->second.owner << "] Freed buffer " << m.buffer_id << " (ref_count="
                  << it->second.refs << " remaining)" << std::endl;
        return;
    }
    counters[m.device_id & 7][it->second.buffer_type] -= it->second.size;
    std::cout << "[PID " << it->second.owner << "] Freed buffer " << m.buffer_id << " on device " << m.device_id
              << " (" << it->second.size << " bytes, FINAL)" << std::endl;
    registry.erase(it);
}

static void serve(int fd) {
    Wire m;
    while (recv(fd, &m, sizeof m, 0) > 0) {
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
                    const uint64_t* c = counters[m.device_id & 7];
                    r.counters[0] = c[0];
                    r.counters[1] = c[1];
                    r.counters[2] = c[2] + c[3];
                    r.counters[3] = c[4];
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
