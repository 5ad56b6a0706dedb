"""Method 1 / Method 2 sampler throughput: one worker-like process, and a 2-worker DataLoader.

    python benchmarks/samplers_speed.py data/corpus single            # items/s per worker
    python benchmarks/samplers_speed.py data/corpus loader 44100 16   # 2-worker DataLoader
"""
import os, sys, time


def main():
    from diffmst.data.sources import open_multitrack
    from diffmst.data.samplers import Method1Dataset, Method2Dataset, make_loader, worker_init
    src = open_multitrack(sys.argv[1])
    mode = sys.argv[2] if len(sys.argv) > 2 else "single"
    print("load", os.getloadavg())
    if mode == "single":
        worker_init(0)
        for sr in (24000, 44100):
            for n in (8, 16):
                ds = Method1Dataset(src, max_tracks=n, sample_rate=sr, seed=1)
                ds[0]
                k = 6
                t = time.perf_counter()
                tracks = 0
                for i in range(1, k + 1):
                    tracks += int(ds[i]["mask"].sum())
                dt = time.perf_counter() - t
                print(f"method1 single-thread sr={sr} N={n}: {k/dt:.2f} items/s (mean tracks {tracks/k:.1f})", flush=True)
        ds = Method2Dataset(src, sample_rate=24000, seed=1); ds[0]
        t = time.perf_counter()
        for i in range(1, 7): ds[i]
        print(f"method2 (generated refs) single-thread sr=24000 N<=16 5 s: {6/(time.perf_counter()-t):.2f} items/s")
    else:
        sr, n = int(sys.argv[3]), int(sys.argv[4])
        ds = Method1Dataset(src, max_tracks=n, sample_rate=sr, seed=1, items_per_epoch=40)
        loader = make_loader(ds, batch_size=4, num_workers=2)
        it = iter(loader)
        next(it)  # start-up
        t = time.perf_counter(); k = 0
        for b in it:
            k += b["tracks"].shape[0]
        dt = time.perf_counter() - t
        print(f"method1 2 workers sr={sr} N={n}: {k/dt:.2f} items/s", flush=True)
    print("load", os.getloadavg())

if __name__ == "__main__":
    main()
