package containers

import (
	"errors"
	"fmt"
	"testing"
)

func TestIsNotFound(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&apiError{status: 404, message: "No such container: abc"}, true},
		// Podman 4.3, for a container removed between list and inspect.
		{fmt.Errorf("inspecting: %w", &apiError{status: 500, message: "container abc does not exist in database: no such container"}), true},
		{&apiError{status: 500, message: "database is locked"}, false},
		{errors.New("dial unix /var/run/docker.sock: connect: no such file or directory"), false},
	} {
		if got := isNotFound(tc.err); got != tc.want {
			t.Errorf("isNotFound(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
