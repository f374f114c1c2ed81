package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"keydesk/models"
	"keydesk/web"
)

type restStore interface {
	APIListKeys(ctx context.Context, p models.KeyPrincipal, q models.APIKeyQuery) ([]models.APIKeyRecord, int64, error)
	APIGetKey(ctx context.Context, p models.KeyPrincipal, ref string) (*models.APIKeyRecord, error)
	APICreateSubaccount(ctx context.Context, p models.KeyPrincipal, name string, meta models.RequestMeta) (*models.APIKeyRecord, models.Revealed, error)
	APIUpdateKey(ctx context.Context, p models.KeyPrincipal, ref string, name *string, active *bool, meta models.RequestMeta) (*models.APIKeyRecord, error)
}

type restHandlers struct {
	store restStore
}

// apikeyJSON is Mailjet's apikey resource, field for field.
type apikeyJSON struct {
	ACL             string `json:"ACL"`
	APIKey          string `json:"APIKey"`
	CreatedAt       string `json:"CreatedAt"`
	ID              uint   `json:"ID"`
	IsActive        bool   `json:"IsActive"`
	IsMaster        bool   `json:"IsMaster"`
	Name            string `json:"Name"`
	QuarantineValue int    `json:"QuarantineValue"`
	Runlevel        string `json:"Runlevel"`
	SecretKey       string `json:"SecretKey"`
	TrackHost       string `json:"TrackHost"`
	UserID          uint   `json:"UserID"`
}

func toJSON(r models.APIKeyRecord) apikeyJSON {
	return apikeyJSON{APIKey: r.Key.APIKey, CreatedAt: r.Key.CreatedAt.UTC().Format(time.RFC3339), ID: r.Key.ID,
		IsActive: r.Key.IsActive, IsMaster: r.Key.IsMaster, Name: r.Key.Name, Runlevel: "Normal", UserID: r.UserID}
}

// envelope is Mailjet's response wrapper.
type envelope struct {
	Count int          `json:"Count"`
	Data  []apikeyJSON `json:"Data"`
	Total int64        `json:"Total"`
}

func badRequest(msg string) error { return web.APIError(http.StatusBadRequest, msg) }

func parseBoolParam(name, v string) (*bool, error) {
	switch strings.ToLower(v) {
	case "":
		return nil, nil
	case "true", "1":
		b := true
		return &b, nil
	case "false", "0":
		b := false
		return &b, nil
	}
	return nil, badRequest("Invalid value for " + name + ": use true or false.")
}

// list: GET /v3/REST/apikey with Mailjet's Limit/Offset/Countonly and filters.
func (h *restHandlers) list(c echo.Context) error {
	qp := c.QueryParams()
	q := models.APIKeyQuery{APIKey: qp.Get("APIKey"), Name: qp.Get("Name"), Limit: 10}
	if v := qp.Get("Limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1000 {
			return badRequest("Invalid Limit: use a number from 0 to 1000 (0 means 1000).")
		}
		if n == 0 {
			n = 1000
		}
		q.Limit = n
	}
	if v := qp.Get("Offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return badRequest("Invalid Offset: use a number from 0.")
		}
		q.Offset = n
	}
	var err error
	if q.IsActive, err = parseBoolParam("IsActive", qp.Get("IsActive")); err != nil {
		return err
	}
	if q.IsMaster, err = parseBoolParam("IsMaster", qp.Get("IsMaster")); err != nil {
		return err
	}
	countOnly, err := parseBoolParam("Countonly", qp.Get("Countonly"))
	if err != nil {
		return err
	}
	if countOnly != nil && *countOnly {
		q.Limit = 0
	}
	rows, total, err := h.store.APIListKeys(c.Request().Context(), web.APIPrincipal(c), q)
	if err != nil {
		return err
	}
	env := envelope{Data: make([]apikeyJSON, 0, len(rows)), Total: total}
	for _, r := range rows {
		env.Data = append(env.Data, toJSON(r))
	}
	env.Count = len(env.Data)
	if countOnly != nil && *countOnly {
		env.Count = int(total)
	}
	return c.JSON(http.StatusOK, env)
}

func (h *restHandlers) get(c echo.Context) error {
	r, err := h.store.APIGetKey(c.Request().Context(), web.APIPrincipal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, envelope{Count: 1, Data: []apikeyJSON{toJSON(*r)}, Total: 1})
}

// decodeBody reads a JSON object and checks its properties: writable ones
// are returned, read-only and unknown ones are refused with a 400.
func decodeBody(c echo.Context, writable ...string) (map[string]json.RawMessage, error) {
	var body map[string]json.RawMessage
	dec := json.NewDecoder(c.Request().Body)
	if err := dec.Decode(&body); err != nil || body == nil {
		return nil, badRequest("The request body must be a JSON object.")
	}
	readOnly := map[string]bool{"APIKey": true, "CreatedAt": true, "ID": true, "IsMaster": true, "QuarantineValue": true,
		"Runlevel": true, "SecretKey": true, "TrackHost": true, "UserID": true}
	for k, v := range body {
		switch {
		case contains(writable, k):
		case k == "ACL" && (bytes.Equal(v, []byte(`""`)) || bytes.Equal(v, []byte("null"))):
			delete(body, k) // Mailjet's client may send an empty ACL
		case readOnly[k]:
			return nil, badRequest("Property " + k + " is read-only.")
		default:
			return nil, badRequest("Unknown property " + k + ".")
		}
	}
	return body, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func stringProp(body map[string]json.RawMessage, name string) (*string, error) {
	raw, ok := body[name]
	if !ok {
		return nil, nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, badRequest("Property " + name + " must be a string.")
	}
	return &v, nil
}

func boolProp(body map[string]json.RawMessage, name string) (*bool, error) {
	raw, ok := body[name]
	if !ok {
		return nil, nil
	}
	var v bool
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, badRequest("Property " + name + " must be true or false.")
	}
	return &v, nil
}

// create: POST /v3/REST/apikey {"Name": …} makes a sub-account and its key;
// this response is the only one that carries the SecretKey.
func (h *restHandlers) create(c echo.Context) error {
	body, err := decodeBody(c, "Name", "IsActive")
	if err != nil {
		return err
	}
	name, err := stringProp(body, "Name")
	if err != nil {
		return err
	}
	if name == nil {
		return badRequest("Property Name is required.")
	}
	active, err := boolProp(body, "IsActive")
	if err != nil {
		return err
	}
	p := web.APIPrincipal(c)
	r, secret, err := h.store.APICreateSubaccount(c.Request().Context(), p, *name, web.Meta(c))
	if err != nil {
		return err
	}
	if active != nil && !*active {
		if r, err = h.store.APIUpdateKey(c.Request().Context(), p, strconv.FormatUint(uint64(r.Key.ID), 10), nil, active, web.Meta(c)); err != nil {
			return err
		}
	}
	out := toJSON(*r)
	out.SecretKey = secret.Secret
	web.NoStore(c)
	return c.JSON(http.StatusCreated, envelope{Count: 1, Data: []apikeyJSON{out}, Total: 1})
}

// update: PUT /v3/REST/apikey/{id} with Name and/or IsActive.
func (h *restHandlers) update(c echo.Context) error {
	body, err := decodeBody(c, "Name", "IsActive")
	if err != nil {
		return err
	}
	name, err := stringProp(body, "Name")
	if err != nil {
		return err
	}
	active, err := boolProp(body, "IsActive")
	if err != nil {
		return err
	}
	r, err := h.store.APIUpdateKey(c.Request().Context(), web.APIPrincipal(c), c.Param("id"), name, active, web.Meta(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, envelope{Count: 1, Data: []apikeyJSON{toJSON(*r)}, Total: 1})
}
