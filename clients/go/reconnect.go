package gateway

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ReconnectPolicy says when and how fast a reconnecting subscription or stats watch calls
// again after its call broke. Start from DefaultReconnectPolicy and change what you need;
// every field is used as given.
//
// Retry n of one outage waits min(MaxBackoff, InitialBackoff * Multiplier^(n-1)), times a
// random factor in [1-Jitter, 1+Jitter] so that many clients do not come back in step.
type ReconnectPolicy struct {
	InitialBackoff time.Duration
	Multiplier     float64
	MaxBackoff     time.Duration
	Jitter         float64
	// MaxAttempts bounds the calls made for one outage (or for the first connection);
	// 0: no bound.
	MaxAttempts int
	// MaxElapsed bounds the time since the break; 0: no bound. The context's deadline
	// bounds the whole subscription as usual (DeadlineExceeded is never retried).
	MaxElapsed time.Duration
	// RetryCodes are the status codes retried; any other error ends the subscription as
	// without reconnection. Codes in NeverRetried are refused.
	RetryCodes []codes.Code
	// OnReconnect, if set, is called from Recv each time the subscription got back, before
	// the heap that carries the same report.
	OnReconnect func(Reconnect)
}

// DefaultRetryCodes are the codes retried by default: Unavailable (daemon gone, connection
// reset, daemon shutting down) and Aborted.
var DefaultRetryCodes = []codes.Code{codes.Unavailable, codes.Aborted}

// NeverRetried are the codes a policy refuses to retry: the same call would fail the same
// way, or the caller asked for the end (cancellation, its own deadline).
var NeverRetried = []codes.Code{
	codes.OK, codes.Canceled, codes.DeadlineExceeded, codes.InvalidArgument, codes.NotFound,
	codes.PermissionDenied, codes.Unauthenticated,
}

// DefaultReconnectPolicy retries Unavailable and Aborted forever, from 100 ms up to 5 s
// between calls with 20% jitter.
func DefaultReconnectPolicy() ReconnectPolicy {
	return ReconnectPolicy{
		InitialBackoff: 100 * time.Millisecond,
		Multiplier:     2,
		MaxBackoff:     5 * time.Second,
		Jitter:         0.2,
		RetryCodes:     append([]codes.Code(nil), DefaultRetryCodes...),
	}
}

// Validate reports a policy that cannot work.
func (p *ReconnectPolicy) Validate() error {
	switch {
	case p.InitialBackoff <= 0 || p.MaxBackoff < p.InitialBackoff:
		return errors.New("gateway: reconnect policy needs 0 < InitialBackoff <= MaxBackoff")
	case !(p.Multiplier >= 1):
		return errors.New("gateway: reconnect policy needs Multiplier >= 1")
	case !(p.Jitter >= 0 && p.Jitter <= 1):
		return errors.New("gateway: reconnect policy needs 0 <= Jitter <= 1")
	case p.MaxAttempts < 0 || p.MaxElapsed < 0:
		return errors.New("gateway: reconnect policy needs MaxAttempts, MaxElapsed >= 0")
	case len(p.RetryCodes) == 0:
		return errors.New("gateway: reconnect policy retries no code")
	}
	for _, c := range p.RetryCodes {
		for _, never := range NeverRetried {
			if c == never {
				return fmt.Errorf("gateway: reconnect policy: %v is never retried", c)
			}
		}
	}
	return nil
}

// Backoff is the wait before retry n (from 1) of one outage, for a random u in [0, 1).
func (p *ReconnectPolicy) Backoff(n int, u float64) time.Duration {
	base := float64(p.InitialBackoff) * math.Pow(p.Multiplier, float64(max(n-1, 0)))
	base = math.Min(base, float64(p.MaxBackoff)) // also caps +Inf
	return time.Duration(base * (1 - p.Jitter + 2*p.Jitter*u))
}

func (p *ReconnectPolicy) retries(err error) bool {
	code := status.Code(err)
	for _, c := range p.RetryCodes {
		if c == code {
			return true
		}
	}
	return false
}

// Reconnect reports how a reconnecting subscription (or stats watch) got back after its call
// broke. Every heap the gateway captured between the break and the new call is lost to this
// subscriber; how many is unknown here (compare LastCnt with the next heap's Cnt if the
// sender numbers heaps consecutively). The new call numbers its heaps from 1 again: that is
// not a gap, and it does not count in Heap.Lost.
type Reconnect struct {
	// Err is the error that ended the previous call, with its Code.
	Err  error
	Code codes.Code
	// Disconnected is when the break was seen, Reconnected when the gateway accepted the
	// new call; Downtime is the time between them.
	Disconnected time.Time
	Reconnected  time.Time
	Downtime     time.Duration
	// Attempts is the number of calls it took (1: the first retry worked).
	Attempts int
	// LastSequence and LastCnt are the sequence number and SPEAD heap counter of the last
	// heap before the break (LastSequence 0: there was none).
	LastSequence uint64
	LastCnt      uint64
	// SubscriberID is the gateway's id of the new call, PreviousSubscriberID that of the
	// previous one (0 for stats watches).
	PreviousSubscriberID int
	SubscriberID         int
	// ServerRestarted is true when the call reached a different daemon process (its
	// x-gateway-instance id changed): the daemon was restarted; false for the same process.
	// From a daemon that sends no instance id it is inferred from subscriber ids starting
	// again, and false then proves nothing (others may have subscribed first).
	ServerRestarted bool
}

// outage is a broken call being retried.
type outage struct {
	since    time.Time
	err      error
	failures int // calls that failed since the break (or since the first call)
	retries  int // calls scheduled since
}

// retrier is the state of a reconnecting call, without I/O: Recv tells it what happened (a
// call accepted, a heap delivered, a call failed) and it says how long to wait before the
// next call, and what to report.
type retrier struct {
	policy         ReconnectPolicy
	rand           func() float64
	now            func() time.Time
	connected      bool
	acceptedBefore bool
	outage         *outage
	pending        *Reconnect
	reconnects     int
	subscriberID   int
	instance       string
	lastSequence   uint64
	lastCnt        uint64
}

func newRetrier(policy ReconnectPolicy) *retrier {
	return &retrier{policy: policy, rand: rand.Float64, now: time.Now}
}

// accepted records that the gateway accepted a call; instance is the daemon process's id
// (x-gateway-instance), empty if it sent none.
func (r *retrier) accepted(subscriberID int, instance string) {
	r.connected = true
	o := r.outage
	r.outage = nil
	previous, previousInstance := r.subscriberID, r.instance
	r.subscriberID, r.instance = subscriberID, instance
	if o == nil || !r.acceptedBefore {
		r.acceptedBefore = true
		return
	}
	now := r.now()
	var restarted bool
	if instance != "" && previousInstance != "" {
		restarted = instance != previousInstance
	} else {
		// A daemon without an instance id: its subscriber ids start again at 1.
		restarted = subscriberID != 0 && previous != 0 && subscriberID <= previous
	}
	if r.pending != nil {
		// Two outages without a heap in between: the next heap reports the latest, but
		// must not hide that the daemon restarted during the first.
		restarted = restarted || r.pending.ServerRestarted
	}
	report := Reconnect{
		Err: o.err, Code: status.Code(o.err),
		Disconnected: o.since, Reconnected: now, Downtime: now.Sub(o.since),
		Attempts:     o.failures + 1,
		LastSequence: r.lastSequence, LastCnt: r.lastCnt,
		PreviousSubscriberID: previous, SubscriberID: subscriberID,
		ServerRestarted: restarted,
	}
	r.pending = &report
	r.reconnects++
	if r.policy.OnReconnect != nil {
		r.policy.OnReconnect(report)
	}
}

// delivered records a heap handed to the caller and attaches the pending report to it.
func (r *retrier) delivered(h *Heap) {
	r.lastSequence, r.lastCnt = h.Sequence, h.Cnt
	h.Reconnect = r.take()
}

// take returns the pending report, once.
func (r *retrier) take() *Reconnect {
	report := r.pending
	r.pending = nil
	return report
}

// failed records a failed call and returns the wait before calling again, or false: give up
// and return err.
func (r *retrier) failed(err error) (time.Duration, bool) {
	wasConnected := r.connected
	r.connected = false
	if !r.policy.retries(err) {
		return 0, false
	}
	now := r.now()
	if r.outage == nil || wasConnected {
		r.outage = &outage{since: now, err: err}
	}
	o := r.outage
	if !wasConnected {
		o.failures++
	}
	p := &r.policy
	if p.MaxAttempts > 0 && o.failures >= p.MaxAttempts {
		return 0, false
	}
	o.retries++
	delay := p.Backoff(o.retries, r.rand())
	if p.MaxElapsed > 0 {
		left := p.MaxElapsed - now.Sub(o.since)
		if left <= 0 {
			return 0, false
		}
		delay = min(delay, left)
	}
	return delay, true
}
