// The host module's persistent thread pool: parallel_for over [0, n) with the caller taking
// part. Kernel libraries reach it through table.hpp's Host, so one pool serves every level.
// One job runs at a time; a call made while the pool is busy (another Python thread)
// runs serially in its own thread, so concurrent calls are safe and never deadlock.
// A thread may cap the threads of its own calls (set_local_cap): a Dask worker thread
// runs each block on one core without changing the count other callers get.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ndpool {

class ThreadPool {
public:
    static ThreadPool &instance() {
        static ThreadPool pool;
        return pool;
    }

    // The threads a call made from this thread uses: the pool's count, or this thread's cap.
    int threads() const {
        const int n = threads_.load(), cap = local_cap();
        return cap > 0 && cap < n ? cap : n;
    }

    // Caps the threads of calls from the calling thread (0 lifts the cap); returns the old cap.
    static int set_local_cap(int cap) {
        const int old = local_cap();
        local_cap() = std::max(0, cap);
        return old;
    }

    static int &local_cap() {
        static thread_local int cap = 0;
        return cap;
    }

    void set_threads(int n) { threads_.store(std::max(1, n)); }

    // Runs body(begin, end) over chunks of [0, n); chunks are claimed dynamically.
    void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)> &body) {
        if (n <= 0) return;
        int want = static_cast<int>(std::min<int64_t>(threads(), (n + grain - 1) / grain));
        std::unique_lock<std::mutex> busy(job_mutex_, std::try_to_lock);
        if (want <= 1 || !busy.owns_lock()) {
            body(0, n);
            return;
        }
        grow(want - 1);
        int64_t chunk = std::max<int64_t>(grain, n / (static_cast<int64_t>(want) * 16));
        std::atomic<int64_t> next{0};
        std::exception_ptr failure;  // the first exception of any thread, rethrown here
        std::mutex failure_mutex;
        std::function<void()> work = [&]() {
            for (;;) {
                int64_t begin = next.fetch_add(chunk);
                if (begin >= n) return;
                try {
                    body(begin, std::min(n, begin + chunk));
                } catch (...) {
                    std::lock_guard<std::mutex> lock(failure_mutex);
                    if (!failure) failure = std::current_exception();
                    next.store(n);  // the others stop at their next chunk
                    return;
                }
            }
        };
        {
            std::lock_guard<std::mutex> lock(mutex_);
            job_ = &work;
            helpers_wanted_ = want - 1;
            helpers_done_.store(0);
            ++generation_;
            published_.store(generation_, std::memory_order_release);
        }
        wake_.notify_all();
        work();
        // the helpers' last chunks end within microseconds of the caller's: wait for them
        // spinning, as they wait for work, before sleeping (a wake-up costs tens of them);
        // yielding, so that a helper waiting for this core (more threads than cores) runs
        const int helpers = want - 1;
        const auto until = std::chrono::steady_clock::now() + kSpin;
        while (helpers_done_.load(std::memory_order_acquire) != helpers) {
            for (int i = 0; i < 32; ++i) pause();
            std::this_thread::yield();
            if (std::chrono::steady_clock::now() >= until) break;
        }
        {
            std::unique_lock<std::mutex> lock(mutex_);
            done_.wait(lock, [&] { return helpers_done_.load() == helpers_wanted_; });
            job_ = nullptr;
        }
        if (failure) std::rethrow_exception(failure);
    }

    ~ThreadPool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
            ++generation_;
            published_.store(generation_, std::memory_order_release);
        }
        wake_.notify_all();
        for (auto &t : workers_) t.join();
    }

private:
    ThreadPool() : threads_(default_threads()) {}

    static int default_threads() {
        if (const char *env = std::getenv("NDPOOL_NUM_THREADS")) {
            int n = std::atoi(env);
            if (n > 0) return n;
        }
        unsigned hw = std::thread::hardware_concurrency();
        return hw == 0 ? 1 : static_cast<int>(hw);
    }

    void grow(int helpers) {
        while (static_cast<int>(workers_.size()) < helpers) {
            int id = static_cast<int>(workers_.size());
            workers_.emplace_back([this, id] { loop(id); });
        }
    }

    void loop(int id) {
        uint64_t seen = 0;
        for (;;) {
            std::function<void()> *job = nullptr;
            // Spin a little before sleeping: waking a sleeping thread takes tens of
            // microseconds here, as long as a whole small pooling call. The spin is
            // bounded in time, not in pause instructions (whose cost varies 10x between
            // CPUs): a spinning helper slows the caller's Python code between calls.
            const auto until = std::chrono::steady_clock::now() + kSpin;
            while (published_.load(std::memory_order_acquire) == seen) {
                for (int i = 0; i < 32; ++i) pause();
                if (std::chrono::steady_clock::now() >= until) break;
            }
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
                if (stop_) return;
                seen = generation_;
                if (id >= helpers_wanted_ || job_ == nullptr) continue;
                job = job_;
            }
            (*job)();
            {
                std::lock_guard<std::mutex> lock(mutex_);  // under the lock: a sleeping caller sees it
                helpers_done_.fetch_add(1, std::memory_order_release);
            }
            done_.notify_all();
        }
    }

    std::atomic<int> threads_;
    std::mutex job_mutex_;
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    std::vector<std::thread> workers_;
    std::function<void()> *job_ = nullptr;
    int helpers_wanted_ = 0;
    std::atomic<int> helpers_done_{0};  // read by the caller's spin without the lock
    uint64_t generation_ = 0;
    std::atomic<uint64_t> published_{0};  // generation_, readable without the lock
    static constexpr std::chrono::microseconds kSpin{300};  // covers the Python between two calls

    static void pause() {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#else
        std::this_thread::yield();
#endif
    }
    bool stop_ = false;
};

}  // namespace ndpool
