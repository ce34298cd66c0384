package gateway

import (
	"os"
	"runtime/debug"
)

// SubscriberGCPercent is the garbage collection target that TuneGC sets.
const SubscriberGCPercent = 400

// TuneGC sets the garbage collection target (debug.SetGCPercent) to SubscriberGCPercent,
// unless the GOGC environment variable is set, and reports whether it did.
//
// Every heap a subscription delivers is a new allocation of the heap's size. With Go's
// default target (GOGC=100) a program whose live data is a few MiB collects after every few
// such heaps, and at 1 MiB heaps the collector took about 40% of a subscriber's CPU (see
// bench/README.md). At 400 the heap may grow to five times the live data instead of twice.
// The setting is process-wide, so the package never makes it on its own: call TuneGC first
// thing in a program whose main work is subscribing (the spead2-sub command does).
func TuneGC() bool {
	if _, set := os.LookupEnv("GOGC"); set {
		return false
	}
	debug.SetGCPercent(SubscriberGCPercent)
	return true
}
