package api

import (
	"github.com/berth-dev/berth/placement/reservation"

	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/placement"
)

// ReservationList is GET /api/v1/reservations.
type ReservationList struct {
	Reservations []placement.Reservation `json:"reservations"`
}

func (a *API) listReservations(c echo.Context) error {
	server, kind, org := c.QueryParam("server"), placement.Kind(c.QueryParam("kind")), c.QueryParam("organization")
	if kind != "" && !kind.Valid() {
		return invalidArgument("kind", "kind must be %q or %q, got %q", placement.KindDeployment, placement.KindBuild, kind)
	}
	out := ReservationList{Reservations: []placement.Reservation{}}
	for _, r := range a.opts.Placer.Store().List() {
		if (server != "" && r.Server != server) || (kind != "" && r.Kind != kind) || (org != "" && r.Organization != org) {
			continue
		}
		out.Reservations = append(out.Reservations, r)
	}
	return c.JSON(http.StatusOK, out)
}

func (a *API) confirmReservation(c echo.Context) error {
	if err := decodeNoBody(c); err != nil {
		return err
	}
	r, err := a.opts.Placer.Confirm(c.Param("id"))
	if err != nil {
		return reservationError(err)
	}
	return c.JSON(http.StatusOK, r)
}

func (a *API) deleteReservation(c echo.Context) error {
	if err := decodeNoBody(c); err != nil {
		return err
	}
	r, err := a.opts.Placer.Store().Release(c.Param("id"))
	if err != nil {
		return reservationError(err)
	}
	return c.JSON(http.StatusOK, r)
}

// reservationError maps the store's errors: unknown (or expired) id → 404,
// an operation the reservation's kind or state does not allow → 409.
func reservationError(err error) error {
	switch {
	case errors.Is(err, reservation.ErrNotFound):
		return notFound("id", "%s (it may have expired or been released)", err.Error())
	case errors.Is(err, reservation.ErrInvalidTransition):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Field: "id", Message: err.Error()}
	}
	return err
}
