package gateway

import (
	"os"
	"runtime/debug"
	"testing"
)

func TestTuneGCLeavesAnExplicitGOGC(t *testing.T) {
	before := debug.SetGCPercent(150)
	defer debug.SetGCPercent(before)

	t.Setenv("GOGC", "150")
	if TuneGC() || debug.SetGCPercent(150) != 150 {
		t.Fatal("TuneGC changed the target although GOGC is set")
	}
}

func TestTuneGCRaisesTheTarget(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	t.Setenv("GOGC", "") // restores GOGC after the test (and rules out t.Parallel)
	os.Unsetenv("GOGC")

	if !TuneGC() || debug.SetGCPercent(100) != SubscriberGCPercent {
		t.Fatalf("TuneGC did not set the target to %d", SubscriberGCPercent)
	}
}
