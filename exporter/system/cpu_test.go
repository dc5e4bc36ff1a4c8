package system

import (
	"reflect"
	"testing"
)

func TestMergeCPUTimes(t *testing.T) {
	prev := cpuTimes{User: 100, System: 50, Idle: 1000, Iowait: 10}
	tests := []struct {
		name          string
		now           cpuTimes
		want          cpuTimes
		wantReset     bool
		wantBackwards []string
	}{
		{"all forward", cpuTimes{User: 101, System: 51, Idle: 1001, Iowait: 11}, cpuTimes{User: 101, System: 51, Idle: 1001, Iowait: 11}, false, nil},
		{"iowait wobbles back: held", cpuTimes{User: 101, System: 51, Idle: 1001, Iowait: 9.99}, cpuTimes{User: 101, System: 51, Idle: 1001, Iowait: 10}, false, []string{"iowait"}},
		{"idle back less than 3s: held", cpuTimes{User: 101, System: 51, Idle: 997.5, Iowait: 11}, cpuTimes{User: 101, System: 51, Idle: 1000, Iowait: 11}, false, []string{"idle"}},
		{"idle back 3s or more: hotplug reset", cpuTimes{User: 1, Idle: 997}, cpuTimes{User: 1, Idle: 997}, true, nil},
		{"first reading", prev, prev, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := prev
			if tt.name == "first reading" {
				p = cpuTimes{}
			}
			got, reset, backwards := mergeCPUTimes(p, tt.now)
			if got != tt.want || reset != tt.wantReset || !reflect.DeepEqual(backwards, tt.wantBackwards) {
				t.Errorf("mergeCPUTimes = %+v, reset %v, backwards %v; want %+v, %v, %v", got, reset, backwards, tt.want, tt.wantReset, tt.wantBackwards)
			}
		})
	}
}

// TestCPUCountersNeverGoBackwards drives the collector's memory through a
// sequence of readings, including a CPU going offline and coming back.
func TestCPUCountersNeverGoBackwards(t *testing.T) {
	c, err := newCPUCollector(Paths{Proc: "testdata/proc", Sys: "testdata/sys"}, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		fresh map[int]cpuTimes
		want  map[int]cpuTimes
	}{
		{map[int]cpuTimes{0: {User: 10, Idle: 100}, 1: {User: 5, Idle: 50}}, map[int]cpuTimes{0: {User: 10, Idle: 100}, 1: {User: 5, Idle: 50}}},
		{map[int]cpuTimes{0: {User: 9.99, Idle: 101}, 1: {User: 6, Idle: 51}}, map[int]cpuTimes{0: {User: 10, Idle: 101}, 1: {User: 6, Idle: 51}}},
		{map[int]cpuTimes{0: {User: 11, Idle: 102}}, map[int]cpuTimes{0: {User: 11, Idle: 102}}},                                                   // cpu1 offline
		{map[int]cpuTimes{0: {User: 12, Idle: 103}, 1: {User: 0.5, Idle: 1}}, map[int]cpuTimes{0: {User: 12, Idle: 103}, 1: {User: 0.5, Idle: 1}}}, // back from zero
	}
	for i, s := range steps {
		if got := c.advance(s.fresh); !reflect.DeepEqual(got, s.want) {
			t.Errorf("step %d: got %+v, want %+v", i, got, s.want)
		}
	}
}
