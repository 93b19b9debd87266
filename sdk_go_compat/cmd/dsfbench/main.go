// Command dsfbench measures BatchGet from Go against a running daemon: how
// many requests per second a number of concurrent callers get, and the
// latency distribution each caller sees.
//
// Against the demo dataset (dsfeatures serve --demo):
//
//	go run ./cmd/dsfbench -url http://127.0.0.1:8080 -duration 10s -concurrency 16
//
// Every request reads -entities ids (r1..rN by default) and -features
// features; answers whose rows do not all come back are counted as errors.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	dsfeatures "github.com/dsfeatures/dsfeatures/sdk_go_compat"
)

type config struct {
	url         string
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	entities    int
	entityType  string
	idFormat    string
	features    []string
	timeout     time.Duration
}

func parseFlags() (config, error) {
	var c config
	var features string
	flag.StringVar(&c.url, "url", dsfeatures.DefaultURL, "daemon URL")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "how long to measure")
	flag.DurationVar(&c.warmup, "warmup", time.Second, "how long to run before measuring (connections, caches)")
	flag.IntVar(&c.concurrency, "concurrency", 16, "concurrent callers")
	flag.IntVar(&c.entities, "entities", 100, "entities per BatchGet")
	flag.StringVar(&c.entityType, "entity-type", "rider", "entity type of the ids")
	flag.StringVar(&c.idFormat, "id-format", "r%d", "fmt pattern of the ids, numbered from 1")
	flag.StringVar(&features, "features",
		"rider_stats:trips_7d,rider_stats:avg_fare,rider_stats:home_city,rider_stats:is_premium",
		"comma-separated feature references")
	flag.DurationVar(&c.timeout, "timeout", 5*time.Second, "per-attempt timeout of the client")
	flag.Parse()
	for _, f := range strings.Split(features, ",") {
		if f = strings.TrimSpace(f); f != "" {
			c.features = append(c.features, f)
		}
	}
	switch {
	case c.concurrency < 1:
		return c, errors.New("-concurrency must be at least 1")
	case c.entities < 1:
		return c, errors.New("-entities must be at least 1")
	case len(c.features) == 0:
		return c, errors.New("-features must name at least one feature")
	case c.duration <= 0:
		return c, errors.New("-duration must be positive")
	}
	return c, nil
}

type worker struct {
	latencies []time.Duration
	errors    int
	firstErr  error
}

func main() {
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dsfbench:", err)
		os.Exit(2)
	}
	client, err := dsfeatures.NewClient(dsfeatures.Options{
		URL: cfg.url, Timeout: cfg.timeout, PoolSize: cfg.concurrency,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dsfbench:", err)
		os.Exit(2)
	}
	defer client.Close()

	ids := make([]string, cfg.entities)
	for i := range ids {
		ids[i] = fmt.Sprintf(cfg.idFormat, i+1)
	}
	entities := map[string][]string{cfg.entityType: ids}

	// One checked call first: a wrong URL or feature fails fast and clearly.
	resp, err := client.BatchGet(context.Background(), entities, cfg.features)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dsfbench: first BatchGet failed:", err)
		os.Exit(1)
	}
	present := 0
	for _, row := range resp.Rows {
		for i := range row.Statuses {
			if row.Present(i) {
				present++
			}
		}
	}

	run(client, entities, cfg, cfg.warmup)
	workers := run(client, entities, cfg, cfg.duration)

	var all []time.Duration
	errs := 0
	var firstErr error
	for _, w := range workers {
		all = append(all, w.latencies...)
		errs += w.errors
		if firstErr == nil {
			firstErr = w.firstErr
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	n := len(all)
	fmt.Printf("dsfbench: BatchGet of %d %s entities x %d features (%d of %d values PRESENT), %d callers, %v against %s\n",
		cfg.entities, cfg.entityType, len(cfg.features), present, cfg.entities*len(cfg.features),
		cfg.concurrency, cfg.duration, cfg.url)
	fmt.Printf("requests    %d ok, %d errors\n", n, errs)
	if firstErr != nil {
		fmt.Printf("first error %v\n", firstErr)
	}
	if n == 0 {
		os.Exit(1)
	}
	// Calls still running when the window closed are not counted, so the
	// window, not the wall time until they return, is the denominator.
	rps := float64(n) / cfg.duration.Seconds()
	fmt.Printf("throughput  %.0f requests/s (%.0f entity rows/s)\n", rps, rps*float64(cfg.entities))
	fmt.Printf("latency     p50 %s  p90 %s  p99 %s  max %s\n",
		ms(quantile(all, 0.50)), ms(quantile(all, 0.90)), ms(quantile(all, 0.99)), ms(all[n-1]))
	if errs > 0 {
		os.Exit(1)
	}
}

// run calls BatchGet from cfg.concurrency goroutines for d.
func run(client *dsfeatures.Client, entities map[string][]string, cfg config, d time.Duration) []*worker {
	if d <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	workers := make([]*worker, cfg.concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{latencies: make([]time.Duration, 0, 4096)}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				t := time.Now()
				// The measurement window ends at ctx's deadline; a call still
				// running then is not counted.
				resp, err := client.BatchGet(context.Background(), entities, cfg.features)
				took := time.Since(t)
				if ctx.Err() != nil {
					return
				}
				if err == nil && len(resp.Rows) != cfg.entities {
					err = fmt.Errorf("%d rows for %d entities", len(resp.Rows), cfg.entities)
				}
				if err != nil {
					w.errors++
					if w.firstErr == nil {
						w.firstErr = err
					}
					continue
				}
				w.latencies = append(w.latencies, took)
			}
		}()
	}
	wg.Wait()
	return workers
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
