package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"keydesk/models"
	"keydesk/views"
	"keydesk/web"
)

type authHandlers struct {
	web   *web.Server
	store *models.Store
}

// homeFor is where a role lands after signing in.
func homeFor(p *models.Principal) string {
	switch r := p.Role(); {
	case r.IsMemberRole():
		return "/keys"
	case r == models.RoleSupport:
		return "/support"
	default:
		return "/audit"
	}
}

func (h *authHandlers) home(c echo.Context) error {
	if p := web.Principal(c); p != nil {
		return c.Redirect(http.StatusSeeOther, homeFor(p))
	}
	return c.Redirect(http.StatusSeeOther, "/login")
}

var loginNotices = map[string]string{
	"logout":   "You are logged out.",
	"password": "Your password was changed. Log in with the new one.",
	"reset":    "Your password was changed and every session signed out. Log in with the new one.",
}

// afterLogin is where a signed-in person goes: the page they asked for
// (a same-site path only, see web.SafeReturnPath), else their home.
func afterLogin(c echo.Context, p *models.Principal) string {
	if next, ok := web.SafeReturnPath(c.FormValue("next")); ok {
		return next
	}
	return homeFor(p)
}

func (h *authHandlers) loginForm(c echo.Context) error {
	if p := web.Principal(c); p != nil {
		return c.Redirect(http.StatusSeeOther, afterLogin(c, p))
	}
	props := views.LoginProps{SignupEnabled: h.web.Config.SignupEnabled, Notice: loginNotices[c.QueryParam("done")]}
	if next, ok := web.SafeReturnPath(c.QueryParam("next")); ok {
		props.Next, props.Continue = next, true
	}
	return web.Render(c, http.StatusOK, views.LoginPage(props))
}

func (h *authHandlers) login(c echo.Context) error {
	email := c.FormValue("email")
	props := views.LoginProps{Email: email, SignupEnabled: h.web.Config.SignupEnabled}
	if next, ok := web.SafeReturnPath(c.FormValue("next")); ok {
		props.Next, props.Continue = next, true
	}
	token, p, err := h.store.Login(c.Request().Context(), email, c.FormValue("password"), h.web.SessionToken(c), web.Meta(c))
	var te *models.ThrottledError
	var be *models.BusyError
	switch {
	case errors.As(err, &te):
		c.Response().Header().Set("Retry-After", strconv.Itoa(te.RetryAfterSeconds()))
		props.RetryAfter = te.RetryAfterSeconds()
		return web.Render(c, http.StatusTooManyRequests, views.LoginPage(props))
	case errors.As(err, &be):
		// Every hashing slot stayed busy: the password was not checked.
		c.Response().Header().Set("Retry-After", strconv.Itoa(be.RetryAfterSeconds()))
		props.Error = "keydesk is busy checking other sign-ins. Try again in a few seconds."
		return web.Render(c, http.StatusServiceUnavailable, views.LoginPage(props))
	case errors.Is(err, models.ErrInvalidCredentials):
		// One message whatever was wrong: no user enumeration.
		props.Error = "The e-mail or password is not correct."
		return web.Render(c, http.StatusUnauthorized, views.LoginPage(props))
	case err != nil:
		return err
	}
	if err := h.web.SetSession(c, token); err != nil {
		return err
	}
	if p.Session.Pending {
		// The password was right; the code comes next.
		next := "/login/code"
		if props.Next != "" {
			next += "?next=" + url.QueryEscape(props.Next)
		}
		return c.Redirect(http.StatusSeeOther, next)
	}
	return c.Redirect(http.StatusSeeOther, afterLogin(c, p))
}

func (h *authHandlers) signupForm(c echo.Context) error {
	if p := web.Principal(c); p != nil {
		return c.Redirect(http.StatusSeeOther, homeFor(p))
	}
	status := http.StatusOK
	if !h.web.Config.SignupEnabled {
		status = http.StatusForbidden
	}
	return web.Render(c, status, views.SignupPage(views.SignupProps{Enabled: h.web.Config.SignupEnabled}))
}

// signup creates the account and its master key, signs the owner in and
// answers with the one response that shows the master secret.
func (h *authHandlers) signup(c echo.Context) error {
	props := views.SignupProps{Enabled: h.web.Config.SignupEnabled, AccountName: c.FormValue("account_name"), Email: c.FormValue("email")}
	if !props.Enabled {
		return web.Render(c, http.StatusForbidden, views.SignupPage(props))
	}
	res, err := h.store.SignUp(c.Request().Context(), models.SignUpInput{
		AccountName: props.AccountName, Email: props.Email, Password: c.FormValue("password"),
	}, h.web.SessionToken(c), web.Meta(c))
	if fe := models.FieldErrors(err); fe != nil {
		props.Errors = fe
		return web.Render(c, http.StatusUnprocessableEntity, views.SignupPage(props))
	}
	var te *models.ThrottledError
	if errors.As(err, &te) {
		c.Response().Header().Set("Retry-After", strconv.Itoa(te.RetryAfterSeconds()))
		// The view picks "1 minute" or "2 minutes" from the count (msg.signup_throttled).
		props.Errors = map[string]string{"form": fmt.Sprintf("Too many sign-ups from your network. Try again in %d minutes.", (te.RetryAfterSeconds()+59)/60)}
		return web.Render(c, http.StatusTooManyRequests, views.SignupPage(props))
	}
	if err != nil {
		return err
	}
	if err := h.web.SignIn(c, res.Token, res.Principal); err != nil {
		return err
	}
	web.NoStore(c)
	now := res.Key.CreatedAt
	row := views.NewKeyRow(res.Key, now, h.store.RotationDays())
	return web.Render(c, http.StatusCreated, views.KeysPage(views.KeysPageProps{
		AccountName: res.Account.Name, Master: &row, SMTP: h.web.Config.SMTP, Now: now,
		Usage: models.SubaccountQuota{Limit: res.Account.SubaccountLimitValue()}, Page: 1, Pages: 1,
		Limit:  models.NewLimitStatus(models.SubaccountQuota{Limit: res.Account.SubaccountLimitValue()}, nil, now),
		Notice: "Welcome to keydesk. Your account and its master API key are ready.",
		Dialog: views.RevealModal(views.RevealProps{
			Title: "Your master API key", Name: res.Account.Name, APIKey: res.Secret.APIKey, Secret: res.Secret.Secret,
			SMTP: h.web.Config.SMTP, Continue: "/keys",
		}),
	}))
}

func (h *authHandlers) logout(c echo.Context) error {
	if err := h.store.Logout(c.Request().Context(), web.Principal(c), web.Meta(c)); err != nil {
		return err
	}
	h.web.ClearSession(c)
	return c.Redirect(http.StatusSeeOther, "/login?done=logout")
}
