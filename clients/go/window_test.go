package gateway

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
)

// http2DefaultWindow is what HTTP/2 assumes before any SETTINGS or WINDOW_UPDATE (RFC 9113).
const http2DefaultWindow = 65535

// windowsOnWire dials a raw listener with opts and returns the stream window the client
// announces in its first SETTINGS frame (65535 if it leaves the default) and its connection
// window (65535 plus the increment of a connection-level WINDOW_UPDATE before any request).
func windowsOnWire(t *testing.T, opts ...Option) (stream, conn uint32) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	_ = lis.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	client, err := Dial(lis.Addr().String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() { _, _ = client.ListStreams(ctx) }() // only to make the client connect

	c, err := lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		t.Fatalf("client preface %q, %v", preface, err)
	}
	framer := http2.NewFramer(c, c)
	stream, conn = http2DefaultWindow, http2DefaultWindow
	for {
		frame, err := framer.ReadFrame()
		if err != nil {
			t.Fatalf("reading the client's frames: %v", err)
		}
		switch f := frame.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
				stream = v
			}
			// The client waits for the server's SETTINGS before it sends a request.
			if err := framer.WriteSettings(); err != nil {
				t.Fatal(err)
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				conn += f.Increment
			}
		case *http2.HeadersFrame:
			return stream, conn // the request: every window announcement came before it
		}
	}
}

func TestDialAnnouncesDefaultWindow(t *testing.T) {
	stream, conn := windowsOnWire(t)
	if stream != DefaultWindowBytes || conn != DefaultWindowBytes {
		t.Fatalf("windows %d (stream), %d (connection), want %d", stream, conn, DefaultWindowBytes)
	}
}

func TestWithWindowBytes(t *testing.T) {
	stream, conn := windowsOnWire(t, WithWindowBytes(1<<20))
	if stream != 1<<20 || conn != 1<<20 {
		t.Fatalf("windows %d (stream), %d (connection), want %d", stream, conn, 1<<20)
	}
}

func TestWithWindowBytesZeroKeepsGRPCDefault(t *testing.T) {
	stream, conn := windowsOnWire(t, WithWindowBytes(0))
	if stream != http2DefaultWindow || conn != http2DefaultWindow {
		t.Fatalf("windows %d (stream), %d (connection), want HTTP/2's %d", stream, conn, http2DefaultWindow)
	}
}

func TestRawDialOptionsOverrideWindow(t *testing.T) {
	stream, conn := windowsOnWire(t, WithDialOptions(
		grpc.WithInitialWindowSize(2<<20), grpc.WithInitialConnWindowSize(3<<20)))
	if stream != 2<<20 || conn != 3<<20 {
		t.Fatalf("windows %d (stream), %d (connection), want %d, %d", stream, conn, 2<<20, 3<<20)
	}
}

func TestDialRefusesWindowsGRPCWouldIgnore(t *testing.T) {
	for _, n := range []int32{-5, 1, MinWindowBytes - 1} {
		if _, err := Dial("127.0.0.1:1", WithWindowBytes(n)); err == nil || !strings.Contains(err.Error(), "window of") {
			t.Errorf("WithWindowBytes(%d): err %v, want a window error", n, err)
		}
	}
	if _, err := Dial("127.0.0.1:1", WithReadBufferBytes(-1)); err == nil || !strings.Contains(err.Error(), "read buffer") {
		t.Errorf("WithReadBufferBytes(-1): err %v, want a read buffer error", err)
	}
	stream, conn := windowsOnWire(t, WithWindowBytes(MinWindowBytes))
	if stream != MinWindowBytes || conn != MinWindowBytes {
		t.Fatalf("windows %d, %d at the minimum", stream, conn)
	}
}
