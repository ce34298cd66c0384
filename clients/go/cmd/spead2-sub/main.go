// Command spead2-sub subscribes to a receive stream of a spead2 gateway and prints every heap
// (and, with -stats, the stream's statistics periodically).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	gateway "github.com/spead2-rs/spead2-gateway-go"
)

func main() {
	if err := run(); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "spead2-sub:", err)
		os.Exit(1)
	}
}

func run() error {
	gateway.TuneGC() // see its doc: at 1 MiB heaps the collector took 40% of the CPU
	target := flag.String("target", "127.0.0.1:50051", "gateway gRPC address")
	items := flag.String("items", "", "comma-separated item names to keep (default: all)")
	every := flag.Uint("every", 0, "print every Nth heap")
	stats := flag.Duration("stats", 0, "print stats at this interval (0: never)")
	reconnect := flag.Bool("reconnect", false, "call again with backoff when the call breaks (daemon restarted, connection lost)")
	useTLS := flag.Bool("tls", false, "connect with TLS")
	ca := flag.String("ca", "", "PEM file of the CA to trust (implies -tls)")
	token := flag.String("token", os.Getenv("SPEAD2_GATEWAY_TOKEN"), "bearer token (default $SPEAD2_GATEWAY_TOKEN)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: spead2-sub [flags] STREAM")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts := []gateway.Option{gateway.WithToken(*token)}
	if *useTLS || *ca != "" {
		config := &tls.Config{MinVersion: tls.VersionTLS12}
		if *ca != "" {
			pem, err := os.ReadFile(*ca)
			if err != nil {
				return err
			}
			config.RootCAs = x509.NewCertPool()
			if !config.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("%s: no certificate found", *ca)
			}
		}
		opts = append(opts, gateway.WithTLS(config))
	}
	client, err := gateway.Dial(*target, opts...)
	if err != nil {
		return err
	}
	defer client.Close()

	if *stats > 0 {
		go printStats(ctx, client, *stats, flag.Arg(0))
	}
	var subOpts []gateway.SubscribeOption
	if *items != "" {
		subOpts = append(subOpts, gateway.ItemNames(strings.Split(*items, ",")...))
	}
	if *every > 0 {
		subOpts = append(subOpts, gateway.EveryNth(uint32(*every)))
	}
	var sub *gateway.Subscription
	if *reconnect {
		policy := gateway.DefaultReconnectPolicy()
		policy.OnReconnect = printReconnect
		sub, err = client.SubscribeReconnecting(ctx, flag.Arg(0), policy, subOpts...)
	} else {
		sub, err = client.Subscribe(ctx, flag.Arg(0), subOpts...)
	}
	if err != nil {
		return err
	}
	defer sub.Close()
	for {
		heap, err := sub.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		printHeap(heap)
	}
}

func printReconnect(rc gateway.Reconnect) {
	restarted := ""
	if rc.ServerRestarted {
		restarted = ", the daemon restarted"
	}
	fmt.Fprintf(os.Stderr, "spead2-sub: reconnected after %v (%d attempt(s), was %v%s); heaps in between are lost\n",
		rc.Downtime.Round(time.Millisecond), rc.Attempts, rc.Code, restarted)
}

func printHeap(h *gateway.Heap) {
	flags := ""
	if h.StartOfStream {
		flags += " start"
	}
	if h.EndOfStream {
		flags += " end"
	}
	if h.Incomplete {
		flags += " incomplete"
	}
	if h.Lost > 0 {
		flags += fmt.Sprintf(" (lost %d heaps before this one)", h.Lost)
	}
	fmt.Printf("heap cnt=%d seq=%d items=%d%s\n", h.Cnt, h.Sequence, len(h.Items), flags)
	for _, it := range h.Items {
		fmt.Printf("  %#x %s %s %v: %s\n", it.ID, it.Name, it.Dtype, it.Shape, preview(it))
	}
}

func preview(it *gateway.Item) string {
	var s string
	if it.Value != nil {
		s = fmt.Sprint(it.Value)
	} else {
		s = fmt.Sprintf("%d raw bytes %x", len(it.Data), it.Data)
	}
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return s
}

func printStats(ctx context.Context, client *gateway.Client, interval time.Duration, stream string) {
	watch, err := client.WatchStats(ctx, interval, stream)
	if err != nil {
		fmt.Fprintln(os.Stderr, "spead2-sub: stats:", err)
		return
	}
	defer watch.Close()
	for {
		update, err := watch.Recv()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, io.EOF) {
				fmt.Fprintln(os.Stderr, "spead2-sub: stats:", err)
			}
			return
		}
		for _, s := range update.GetStreams() {
			keys := make([]string, 0, len(s.GetCounters()))
			for k := range s.GetCounters() {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = fmt.Sprintf("%s=%d", k, s.GetCounters()[k])
			}
			fmt.Printf("stats %s: %s published=%d ring=%d/%d subscriber_dropped=%d\n",
				s.GetStream(), strings.Join(parts, " "), s.GetPublishedHeaps(),
				s.GetRingDepth(), s.GetRingCapacity(), s.GetSubscriberDroppedHeaps())
		}
	}
}
