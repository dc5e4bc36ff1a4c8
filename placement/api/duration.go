package api

import (
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/schedule"

	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
)

// Duration is a JSON duration: a Prometheus duration string ("90s", "10m",
// "1h30m") or a number of seconds. Negative, fractional-nanosecond and
// non-finite values are refused.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if string(data) == "null" {
		return nil
	}
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		v, err := model.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q: want e.g. \"90s\", \"10m\", \"1h\" or a number of seconds", s)
		}
		*d = Duration(v)
		return nil
	}
	secs, err := strconv.ParseFloat(string(data), 64)
	if err != nil {
		return fmt.Errorf("invalid duration %s: want a string like \"10m\" or a number of seconds", data)
	}
	if secs < 0 || secs > float64(1<<62)/float64(time.Second) || secs != secs {
		return fmt.Errorf("invalid duration %s: must be a non-negative number of seconds", data)
	}
	*d = Duration(time.Duration(secs * float64(time.Second)))
	return nil
}

// MarshalJSON writes the duration as a Prometheus duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(model.Duration(d).String())
}

// String is the Prometheus duration form.
func (d Duration) String() string { return model.Duration(d).String() }

func durationOf(d Duration) time.Duration { return time.Duration(d) }

// reservationTTL checks a request's optional ttl: at least
// schedule.MinReservationTTL and at most the policy's
// reservations.max_ttl. 0 means "not given" (the caller's default).
func reservationTTL(ttl *Duration, p *policy.Policy) (time.Duration, error) {
	if ttl == nil {
		return 0, nil
	}
	if d := durationOf(*ttl); d < schedule.MinReservationTTL {
		return 0, invalidArgument("ttl", "ttl %s is below the minimum %s (omit it for the default %s)",
			ttl.String(), Duration(schedule.MinReservationTTL).String(), Duration(p.Reservations.DefaultTTL).String())
	}
	if d := durationOf(*ttl); d > p.Reservations.MaxTTL {
		return 0, unprocessable("ttl", "ttl %s is above the policy's reservations.max_ttl %s", ttl.String(), Duration(p.Reservations.MaxTTL).String())
	}
	return durationOf(*ttl), nil
}
