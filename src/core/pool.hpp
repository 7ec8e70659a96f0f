// A cache of output buffers. A large array fresh from the OS costs a page fault and a
// kernel zero-fill per page (for a 200 MB gradient that is more time than the pooling);
// pooling layers run the same shapes again and again, so freed outputs are kept, up to
// a byte limit (NDPOOL_CACHE_MB, default 1024; 0 turns the cache off), and handed out
// again for the same size.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace ndpool {

class BufferCache {
public:
    static BufferCache &instance() {
        static BufferCache *cache = new BufferCache();  // never destroyed: arrays may outlive exit
        return *cache;
    }

    void *take(size_t bytes) {
        const size_t size = rounded(bytes);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = free_.find(size);
            if (it != free_.end() && !it->second.empty()) {
                void *p = it->second.back();
                it->second.pop_back();
                cached_ -= size;
                return p;
            }
        }
        void *p = std::aligned_alloc(64, size);
        if (!p) throw std::bad_alloc();
        return p;
    }

    void give(void *p, size_t bytes) {
        const size_t size = rounded(bytes);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (cached_ + size <= limit_) {
                free_[size].push_back(p);
                cached_ += size;
                return;
            }
        }
        std::free(p);
    }

    // Frees every cached buffer; returns the bytes released.
    size_t clear() {
        std::lock_guard<std::mutex> lock(mutex_);
        size_t released = cached_;
        for (auto &entry : free_)
            for (void *p : entry.second) std::free(p);
        free_.clear();
        cached_ = 0;
        return released;
    }

    size_t limit() const { return limit_; }

    size_t cached() {
        std::lock_guard<std::mutex> lock(mutex_);
        return cached_;
    }

private:
    BufferCache() {
        long mb = 1024;
        if (const char *env = std::getenv("NDPOOL_CACHE_MB")) mb = std::atol(env);
        limit_ = mb > 0 ? static_cast<size_t>(mb) << 20 : 0;
    }

    static size_t rounded(size_t bytes) { return ((bytes ? bytes : 1) + 4095) / 4096 * 4096; }

    std::mutex mutex_;
    std::unordered_map<size_t, std::vector<void *>> free_;
    size_t cached_ = 0, limit_ = 0;
};

}  // namespace ndpool
