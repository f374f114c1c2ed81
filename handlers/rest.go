package handlers

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"keydesk/models"
	"keydesk/web"
)

type restHandlers struct {
	store *models.Store
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

// maxLimit is Mailjet's cap on Limit.
const maxLimit = 1000

// filters reads the query string with case-insensitive names, as Mailjet
// does (countOnly, Countonly and COUNTONLY are one filter).
func filters(c echo.Context) map[string]string {
	out := map[string]string{}
	for k, v := range c.QueryParams() {
		if len(v) > 0 {
			out[strings.ToLower(k)] = v[0]
		}
	}
	return out
}

// parseSort reads Mailjet's Sort: "Field", "Field ASC" or "Field DESC"
// (the '+' of the URL is a space), on one of models.APIKeySortFields.
func parseSort(v string) (models.APIKeySort, error) {
	parts := strings.Fields(v)
	if len(parts) == 0 || len(parts) > 2 {
		return models.APIKeySort{}, badRequest("Invalid Sort: use a property name, optionally followed by ASC or DESC (e.g. Sort=ID+DESC).")
	}
	var o models.APIKeySort
	for _, f := range models.APIKeySortFields {
		if strings.EqualFold(f, parts[0]) {
			o.Field = f
		}
	}
	if o.Field == "" {
		return o, badRequest("Invalid Sort: apikey cannot be sorted on " + strconv.Quote(parts[0]) + "; sortable properties are " +
			strings.Join(models.APIKeySortFields, ", ") + ".")
	}
	if len(parts) == 2 {
		switch strings.ToUpper(parts[1]) {
		case "ASC":
		case "DESC":
			o.Desc = true
		default:
			return o, badRequest("Invalid Sort order " + strconv.Quote(parts[1]) + ": use ASC or DESC.")
		}
	}
	return o, nil
}

// list: GET /v3/REST/apikey with Mailjet's Limit/Offset/Sort/countOnly and
// filters, names case-insensitive.
func (h *restHandlers) list(c echo.Context) error {
	q, countOnly := models.DefaultAPIKeyQuery, false
	if c.Request().URL.RawQuery != "" {
		var err error
		if q, countOnly, err = restListQuery(c); err != nil {
			return err
		}
	}
	encode := encodeList
	if countOnly {
		encode = encodeCount
	}
	body, err := h.store.APIListKeysEncoded(c.Request().Context(), web.APIPrincipal(c), q, encode)
	if err != nil {
		return err
	}
	return web.JSONBlob(c, http.StatusOK, body)
}

// encodeList and encodeCount make a list's answer (package functions, not
// a closure made for each request).
func encodeList(rows []models.APIKeyRecord, total int64) ([]byte, error) {
	return encodeEnvelope(rows, total, false)
}

func encodeCount(rows []models.APIKeyRecord, total int64) ([]byte, error) {
	return encodeEnvelope(rows, total, true)
}

func encodeEnvelope(rows []models.APIKeyRecord, total int64, countOnly bool) ([]byte, error) {
	env := envelope{Data: make([]apikeyJSON, 0, len(rows)), Total: total}
	for _, r := range rows {
		env.Data = append(env.Data, toJSON(r))
	}
	env.Count = len(env.Data)
	if countOnly {
		env.Count = int(total)
	}
	return encodeJSON(env)
}

// encodeJSON encodes v as c.JSON would (with its final newline).
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// restListQuery reads a list's parameters (and countOnly).
func restListQuery(c echo.Context) (models.APIKeyQuery, bool, error) {
	qp := filters(c)
	q := models.DefaultAPIKeyQuery
	q.APIKey, q.Name = qp["apikey"], qp["name"]
	if v, ok := qp["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return q, false, badRequest("Invalid Limit: use a number from 0 to 1000 (0 means 1000).")
		}
		if n > maxLimit {
			return q, false, badRequest("Invalid Limit: the maximum value is 1000.")
		}
		if n == 0 {
			n = maxLimit
		}
		q.Limit = n
	}
	if v, ok := qp["offset"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return q, false, badRequest("Invalid Offset: use a number from 0.")
		}
		q.Offset = n
	}
	if v, ok := qp["sort"]; ok {
		var err error
		if q.Sort, err = parseSort(v); err != nil {
			return q, false, err
		}
	}
	var err error
	if q.IsActive, err = parseBoolParam("IsActive", qp["isactive"]); err != nil {
		return q, false, err
	}
	if q.IsMaster, err = parseBoolParam("IsMaster", qp["ismaster"]); err != nil {
		return q, false, err
	}
	countOnly, err := parseBoolParam("countOnly", qp["countonly"])
	if err != nil {
		return q, false, err
	}
	if countOnly != nil && *countOnly {
		q.Limit = 0
		return q, true, nil
	}
	return q, false, nil
}

func (h *restHandlers) get(c echo.Context) error {
	r, err := h.store.APIGetKey(c.Request().Context(), web.APIPrincipal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, envelope{Count: 1, Data: []apikeyJSON{toJSON(*r)}, Total: 1})
}

// methodNotAllowed answers a method the resource does not have with 405
// and Allow, as Mailjet documents.
func methodNotAllowed(allow string) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Allow", allow)
		return web.APIError(http.StatusMethodNotAllowed, "Method "+c.Request().Method+" is not allowed on this resource: use "+allow+".")
	}
}

// aclRefused explains why a non-empty ACL is refused.
const aclRefused = "Property ACL is not supported: keydesk keys have no access scopes (every key has full access to what it can see), " +
	"so an ACL could not be enforced. Leave ACL out or empty."

// decodeRESTBody reads a REST request body: it must be application/json
// (else 415) holding one JSON object (else 400), whose properties are all
// in writable; read-only and unknown ones are refused with a 400. An empty
// ACL (which clients send by default) is dropped; any other ACL is refused.
func decodeRESTBody(contentType string, r io.Reader, writable ...string) (map[string]json.RawMessage, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/json" {
		return nil, web.APIError(http.StatusUnsupportedMediaType, "Unsupported Media Type: send the request body as application/json.")
	}
	var body map[string]json.RawMessage
	dec := json.NewDecoder(r)
	if err := dec.Decode(&body); err != nil || body == nil {
		return nil, badRequest("The request body must be a JSON object.")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("The request body must be one JSON object, with nothing after it.")
	}
	readOnly := map[string]bool{"APIKey": true, "CreatedAt": true, "ID": true, "IsMaster": true, "QuarantineValue": true,
		"Runlevel": true, "SecretKey": true, "TrackHost": true, "UserID": true}
	for k, v := range body {
		switch {
		case contains(writable, k):
		case k == "ACL":
			if !bytes.Equal(v, []byte(`""`)) && !bytes.Equal(v, []byte("null")) {
				return nil, badRequest(aclRefused)
			}
			delete(body, k) // Mailjet's clients may send an empty ACL
		case readOnly[k]:
			return nil, badRequest("Property " + k + " is read-only.")
		default:
			return nil, badRequest("Unknown property " + k + ".")
		}
	}
	return body, nil
}

func decodeBody(c echo.Context, writable ...string) (map[string]json.RawMessage, error) {
	return decodeRESTBody(c.Request().Header.Get(echo.HeaderContentType), c.Request().Body, writable...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func stringProp(body map[string]json.RawMessage, name string) (*string, error) {
	raw, ok := body[name]
	if !ok {
		return nil, nil
	}
	var v string
	if isNull(raw) || json.Unmarshal(raw, &v) != nil {
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
	if isNull(raw) || json.Unmarshal(raw, &v) != nil {
		return nil, badRequest("Property " + name + " must be true or false (not null).")
	}
	return &v, nil
}

// create: POST /v3/REST/apikey {"Name": …} makes a sub-account and its key;
// this response is the only one that carries the SecretKey. The store
// answers from what it read inside its transaction, so nothing after the
// commit can lose the secret.
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
	r, secret, err := h.store.APICreateSubaccount(c.Request().Context(), web.APIPrincipal(c), models.APIKeyCreate{Name: *name, IsActive: active}, web.Meta(c))
	if err != nil {
		return err
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
