package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"time"

	"github.com/berth-dev/berth/placement"
	"github.com/berth-dev/berth/placement/api"
	"github.com/berth-dev/berth/placement/api/client"
	"github.com/berth-dev/berth/placement/policy"
	"github.com/berth-dev/berth/placement/reservation"
	"github.com/berth-dev/berth/placement/schedule"
)

// A deployer's flow with the generated client, against a berth-placement
// API running in this process over a fixed two-server fleet: check that
// the server can take the deployment, reserve the capacity there, deploy,
// then confirm the reservation, or release it when the deployment fails.
func Example() {
	baseURL, stop := startPlacementAPI()
	defer stop()

	c, err := client.NewClientWithResponses(baseURL + "/api/v1")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	// Application 42 deploys.
	err = deploy(ctx, c, "42", "app-1", "deploy-42-1", func(server string) error { return nil })
	fmt.Println("app 42:", err)

	// Application 43's deployment fails: its reservation is released.
	err = deploy(ctx, c, "43", "app-1", "deploy-43-1", func(server string) error {
		return errors.New("image pull failed")
	})
	fmt.Println("app 43:", err)

	// What is still held: 42's confirmed reservation, until its container
	// shows in metrics (or reservations.confirm_grace passes).
	open, err := c.ListReservationsWithResponse(ctx, &client.ListReservationsParams{})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range open.JSON200.Reservations {
		fmt.Printf("open: application %s on %s, confirmed %t\n", *r.ApplicationID, r.Server, r.ConfirmedAt != nil)
	}
	// Output:
	// check: app-1 can take this deployment
	// reserved 0.5 cores and 512 MiB on app-1 (state active)
	// retry with the same key: replayed true, same reservation true
	// confirmed: deployment runs on app-1
	// app 42: <nil>
	// check: app-1 can take this deployment
	// reserved 0.5 cores and 512 MiB on app-1 (state active)
	// retry with the same key: replayed true, same reservation true
	// released: capacity on app-1 is free again
	// app 43: deploying on app-1: image pull failed
	// open: application 42 on app-1, confirmed true
}

// deploy runs one deployment of app on server: check, reserve, run,
// confirm or release. key is the deployment's idempotency key: a retry of
// the reserving call with the same key (after a timeout, a 503) gets the
// same reservation instead of a second one.
func deploy(ctx context.Context, c *client.ClientWithResponses, app, server, key string, run func(server string) error) error {
	requirements := client.ResourcesInput{CPU: new("0.5"), Memory: new("512m")}

	// 1. Check: can the server take it now? Nothing is reserved.
	check, err := c.CheckPlacementWithResponse(ctx, client.CheckRequest{Server: server, Requirements: requirements})
	if err != nil {
		return err
	}
	if check.JSON200 == nil {
		return apiError(check.StatusCode(), check.Body)
	}
	fmt.Println("check:", check.JSON200.Summary)
	if !check.JSON200.Fits {
		return fmt.Errorf("%s cannot take it: %v", server, check.JSON200.Reasons)
	}

	// 2. Reserve on that server. The decision is made again atomically with
	// the reservation, so a concurrent deployment cannot take the room.
	body := client.PlacementRequest{
		Requirements:   requirements,
		Candidates:     []string{server},
		ApplicationID:  new(app),
		Reserve:        new(true),
		TTL:            new("15m"), // longer than the deployment takes
		IdempotencyKey: new(key),
	}
	placed, err := c.CreatePlacementWithResponse(ctx, body)
	if err != nil {
		return err
	}
	if placed.JSON200 == nil {
		return apiError(placed.StatusCode(), placed.Body)
	}
	if !placed.JSON200.Placed {
		return fmt.Errorf("not placed: %s", placed.JSON200.Summary)
	}
	res := placed.JSON200.Reservation
	fmt.Printf("reserved %g cores and %d MiB on %s (state %s)\n", res.Resources.CPU, res.Resources.Memory>>20, res.Server, res.State)

	// Retrying is safe: the same key and body answer the same reservation
	// ("replayed"), never a second one. Retry like this when the answer is
	// lost (a timeout) or is a 503.
	again, err := c.CreatePlacementWithResponse(ctx, body)
	if err != nil {
		return err
	}
	if again.JSON200 == nil {
		return apiError(again.StatusCode(), again.Body)
	}
	fmt.Printf("retry with the same key: replayed %t, same reservation %t\n", *again.JSON200.Replayed, again.JSON200.Reservation.ID == res.ID)

	// 3. Deploy; 4. confirm, or release on failure.
	if err := run(res.Server); err != nil {
		released, rerr := c.DeleteReservationWithResponse(ctx, res.ID)
		switch {
		case rerr != nil:
			// Not released: the reservation expires after its TTL.
		case released.JSON200 != nil, released.JSON404 != nil: // 404: already expired or released
			fmt.Printf("released: capacity on %s is free again\n", res.Server)
		}
		return fmt.Errorf("deploying on %s: %w", res.Server, err)
	}
	confirmed, err := c.ConfirmReservationWithResponse(ctx, res.ID)
	if err != nil {
		return err
	}
	if confirmed.JSON200 == nil {
		return apiError(confirmed.StatusCode(), confirmed.Body)
	}
	fmt.Printf("confirmed: deployment runs on %s\n", confirmed.JSON200.Server)
	return nil
}

// apiError reads an error answer: every error has the ErrorBody shape.
func apiError(status int, body []byte) error {
	var e client.ErrorBody
	if err := json.Unmarshal(body, &e); err != nil {
		return fmt.Errorf("HTTP %d: %s", status, body)
	}
	return fmt.Errorf("HTTP %d %s: %s", status, e.Error.Code, e.Error.Message)
}

// startPlacementAPI serves berth-placement's API over a fixed fleet of two
// fresh app servers, with the default policy and reservations in a
// temporary directory.
func startPlacementAPI() (baseURL string, stop func()) {
	dir, err := os.MkdirTemp("", "placement-example")
	if err != nil {
		log.Fatal(err)
	}
	store, err := reservation.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	policy := policy.NewStaticStore(policy.Default())
	a, err := api.New(api.Options{Snapshots: fleet{}, Policy: policy, Placer: schedule.NewPlacer(policy, store)})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(a)
	return srv.URL, func() {
		srv.Close()
		store.Close()
		os.RemoveAll(dir)
	}
}

// fleet is what Prometheus would say: two app servers, seen 5s ago, with
// 8 cores, 16 GiB of memory and 100 GiB of disk, a quarter of each in use.
type fleet struct{}

func (fleet) Snapshot(context.Context) (*placement.Snapshot, error) {
	const gib = 1 << 30
	now := time.Now()
	snap := &placement.Snapshot{Taken: now, Servers: map[string]*placement.ServerState{}}
	for _, name := range []string{"app-1", "app-2"} {
		snap.Servers[name] = &placement.ServerState{
			Name: name, Role: "app", LastSeen: now.Add(-5 * time.Second), Age: 5 * time.Second,
			CPU:    placement.CPUState{Cores: 8, Utilisation: 0.25, PeakUtilisation: 0.25},
			Memory: placement.MemoryState{TotalBytes: 16 * gib, AvailableBytes: 12 * gib, PeakUsedBytes: 4 * gib},
			Disk:   placement.DiskState{SizeBytes: 100 * gib, AvailableBytes: 75 * gib, ThresholdRatio: 0.8},
		}
	}
	return snap, nil
}
