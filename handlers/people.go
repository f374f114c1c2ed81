package handlers

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/pquerna/otp"

	"keydesk/models"
	"keydesk/views"
	"keydesk/web"
)

// peopleHandlers: the second sign-in step, two-factor enrolment, the
// account switcher, /team, invitation links and password reset links.
type peopleHandlers struct {
	web   *web.Server
	store *models.Store
	mail  *mailer
}

// throttled answers a ThrottledError with Retry-After and its seconds.
func throttled(c echo.Context, err error) (int, bool) {
	var te *models.ThrottledError
	if errors.As(err, &te) {
		c.Response().Header().Set("Retry-After", strconv.Itoa(te.RetryAfterSeconds()))
		return te.RetryAfterSeconds(), true
	}
	return 0, false
}

// --- second sign-in step ---

func (h *peopleHandlers) loginCodeForm(c echo.Context) error {
	if web.PendingPrincipal(c) == nil {
		return c.Redirect(http.StatusSeeOther, "/login")
	}
	props := views.LoginCodeProps{}
	if next, ok := web.SafeReturnPath(c.QueryParam("next")); ok {
		props.Next = next
	}
	return web.Render(c, http.StatusOK, views.LoginCodePage(props))
}

func (h *peopleHandlers) loginCode(c echo.Context) error {
	if web.PendingPrincipal(c) == nil {
		return c.Redirect(http.StatusSeeOther, "/login")
	}
	props := views.LoginCodeProps{}
	if next, ok := web.SafeReturnPath(c.FormValue("next")); ok {
		props.Next = next
	}
	p, err := h.store.CompleteSignIn(c.Request().Context(), h.web.SessionToken(c), c.FormValue("code"), web.Meta(c))
	if secs, ok := throttled(c, err); ok {
		props.RetryAfter = secs
		return web.Render(c, http.StatusTooManyRequests, views.LoginCodePage(props))
	}
	if fe := models.FieldErrors(err); fe != nil {
		props.Error = "That code is not right. Enter the current code from your app, or a recovery code."
		return web.Render(c, http.StatusUnauthorized, views.LoginCodePage(props))
	}
	if errors.Is(err, models.ErrSessionInvalid) {
		h.web.ClearSession(c)
		return c.Redirect(http.StatusSeeOther, "/login")
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, afterLogin(c, p))
}

// --- two-factor enrolment (account menu → Security) ---

// qrDataURL renders the otpauth URL as a PNG QR code in a data: URL,
// server-side (the CSP allows data: images; nothing is fetched).
func qrDataURL(otpauth string) (string, error) {
	key, err := otp.NewKeyFromURL(otpauth)
	if err != nil {
		return "", err
	}
	img, err := key.Image(200, 200)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", err
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

func (h *peopleHandlers) twoFactorProps(c echo.Context) (views.TwoFactorProps, error) {
	p := web.Principal(c)
	props := views.TwoFactorProps{Enabled: p.User.Has2FA(), Required: p.MustEnrol2FA, NeedPassword: !p.InSudo(h.store.Now())}
	if props.Enabled {
		n, err := h.store.RecoveryCodesLeft(c.Request().Context(), p.User.ID)
		props.RecoveryLeft, props.CanTurnOff = n, !h.store.Requires2FA(p)
		return props, err
	}
	e, err := h.store.PendingTOTP(p)
	if err != nil || e == nil {
		return props, err
	}
	props.Enrolment = e
	props.QR, err = qrDataURL(e.URL)
	return props, err
}

func (h *peopleHandlers) twoFactorPage(c echo.Context) error {
	props, err := h.twoFactorProps(c)
	if err != nil {
		return err
	}
	if !props.Enabled && props.Enrolment == nil {
		// Nothing pending yet: one click starts (GET changes nothing).
		if c.QueryParam("done") == "off" {
			props.Notice = "Two-factor sign-in is off: your password alone opens your account."
		}
		return web.Render(c, http.StatusOK, views.TwoFactorStart(props))
	}
	web.NoStore(c)
	return web.Render(c, http.StatusOK, views.TwoFactorPage(props))
}

// twoFactorSetup makes a new seed and shows it with its QR code.
func (h *peopleHandlers) twoFactorSetup(c echo.Context) error {
	if _, err := h.store.BeginTOTP(c.Request().Context(), web.Principal(c)); err != nil && models.FieldErrors(err) == nil {
		return err
	}
	return web.Redirect(c, "/account/2fa")
}

// twoFactorConfirm turns 2FA on with a code and shows the recovery codes,
// in this one response.
func (h *peopleHandlers) twoFactorConfirm(c echo.Context) error {
	p := web.Principal(c)
	codes, err := h.store.ConfirmTOTP(c.Request().Context(), p, c.FormValue("code"), web.Meta(c))
	web.NoStore(c)
	if fe := models.FieldErrors(err); fe != nil {
		props, perr := h.twoFactorProps(c)
		if perr != nil {
			return perr
		}
		props.Errors = fe
		return web.Render(c, http.StatusUnprocessableEntity, views.TwoFactorPage(props))
	}
	if err != nil {
		return err
	}
	p.MustEnrol2FA = false
	return web.Render(c, http.StatusOK, views.TwoFactorPage(views.TwoFactorProps{Enabled: true, Codes: codes, Notice: "Two-factor sign-in is on."}))
}

// twoFactorOff turns two-factor sign-in off (sudo: password and code).
func (h *peopleHandlers) twoFactorOff(c echo.Context) error {
	actor, fe, err := ensureSudo(c, h.store, h.store.Now())
	if err != nil {
		return err
	}
	if fe == nil {
		err = h.store.DisableTOTP(c.Request().Context(), web.Principal(c), actor)
		fe = models.FieldErrors(err)
		if fe == nil && err != nil {
			return err
		}
	}
	if fe != nil {
		return h.twoFactorRefused(c, views.TwoFactorFormOff, fe)
	}
	return web.Redirect(c, "/account/2fa?done=off")
}

// twoFactorRefused shows the two-factor page again with form's errors.
func (h *peopleHandlers) twoFactorRefused(c echo.Context, form views.TwoFactorForm, fe map[string]string) error {
	props, err := h.twoFactorProps(c)
	if err != nil {
		return err
	}
	props.Errors, props.Failed = fe, form
	return web.Render(c, http.StatusUnprocessableEntity, views.TwoFactorPage(props))
}

// recoveryCodes replaces the recovery codes (sudo: password and code).
func (h *peopleHandlers) recoveryCodes(c echo.Context) error {
	actor, fe, err := ensureSudo(c, h.store, h.store.Now())
	if err != nil {
		return err
	}
	var codes []string
	if fe == nil {
		codes, err = h.store.RegenerateRecoveryCodes(c.Request().Context(), actor)
		fe = models.FieldErrors(err)
		if fe == nil && err != nil {
			return err
		}
	}
	web.NoStore(c)
	if fe != nil {
		return h.twoFactorRefused(c, views.TwoFactorFormCodes, fe)
	}
	return web.Render(c, http.StatusOK, views.TwoFactorPage(views.TwoFactorProps{Enabled: true, Codes: codes, Notice: "New recovery codes: the old ones no longer work."}))
}

// switchAccount moves the session to another of the person's accounts.
func (h *peopleHandlers) switchAccount(c echo.Context) error {
	id, err := parseID(c.FormValue("account"))
	if err != nil {
		return err
	}
	if err := h.store.SwitchAccount(c.Request().Context(), web.Principal(c), id, web.Meta(c)); err != nil {
		return err
	}
	return web.Redirect(c, "/keys")
}

// --- /team ---

var teamNotices = map[string]string{
	"changed":  "The member's role and access were changed. They apply from their next click.",
	"removed":  "The member was removed; their sessions in this account ended.",
	"revoked":  "The invitation was revoked; its link no longer works.",
	"required": "Two-factor sign-in is now required for every member.",
	"optional": "Two-factor sign-in is no longer required.",
}

func (h *peopleHandlers) teamProps(c echo.Context) (views.TeamProps, error) {
	v, err := h.store.Team(c.Request().Context(), web.Actor(c))
	if err != nil {
		return views.TeamProps{}, err
	}
	return views.TeamProps{View: v, Now: h.store.Now(), Notice: teamNotices[c.QueryParam("done")], Self: web.Principal(c).User.ID,
		Form: views.InviteForm{Role: string(models.RoleDeveloper), ScopeAll: true}}, nil
}

func (h *peopleHandlers) team(c echo.Context) error {
	props, err := h.teamProps(c)
	if err != nil {
		return err
	}
	return web.Render(c, http.StatusOK, views.TeamPage(props))
}

// scopeForm reads the access fields: "all", or "list" with sub-account IDs.
func scopeForm(c echo.Context) (models.ScopeInput, error) {
	in := models.ScopeInput{All: c.FormValue("scope") != "list"}
	if in.All {
		return in, nil
	}
	form, err := c.FormParams()
	if err != nil {
		return in, err
	}
	for _, v := range form["subaccount"] {
		id, err := strconv.ParseUint(v, 10, 32)
		if err != nil || id == 0 {
			return in, &models.ValidationError{Fields: map[string]string{"scope": "Choose sub-accounts from the list."}}
		}
		in.Subaccounts = append(in.Subaccounts, uint(id))
	}
	return in, nil
}

func (h *peopleHandlers) invite(c echo.Context) error {
	props, err := h.teamProps(c)
	if err != nil {
		return err
	}
	scope, err := scopeForm(c)
	props.Form = views.InviteForm{Email: c.FormValue("email"), Role: c.FormValue("role"), ScopeAll: scope.All, Scope: scope.Subaccounts}
	if fe := models.FieldErrors(err); fe != nil {
		props.Errors = fe
		return web.Render(c, http.StatusUnprocessableEntity, views.TeamPage(props))
	}
	if err != nil {
		return err
	}
	inv, token, err := h.store.Invite(c.Request().Context(), web.Actor(c), props.Form.Email, props.Form.Role, scope)
	if fe := models.FieldErrors(err); fe != nil {
		props.Errors = fe
		return web.Render(c, http.StatusUnprocessableEntity, views.TeamPage(props))
	}
	if err != nil {
		return err
	}
	// The link carries the token in its query: request logs record paths
	// only, so it never reaches a log line.
	link := h.web.Config.BaseURL + "/invite?" + url.Values{"t": {token}}.Encode()
	// In the invitee's own language when they already chose one, else the inviter's.
	saved, err := h.store.SavedLanguage(c.Request().Context(), inv.Email)
	if err != nil {
		return err
	}
	mailed := h.mail.invitation(c, mailLanguage(c, saved), inv, web.Principal(c).Account.Name, link)
	web.NoStore(c)
	if props, err = h.teamProps(c); err != nil {
		return err
	}
	props.Reveal = &views.InviteReveal{Email: inv.Email, Link: link, Mailed: mailed}
	return web.Render(c, http.StatusCreated, views.TeamPage(props))
}

func (h *peopleHandlers) revokeInvitation(c echo.Context) error {
	id, err := parseID(c.Param("id"))
	if err != nil {
		return err
	}
	if err := h.store.RevokeInvitation(c.Request().Context(), web.Actor(c), id); err != nil {
		return err
	}
	return web.Redirect(c, "/team?done=revoked")
}

// member finds a member of the team view by ID (another account's: 404).
func member(v *models.TeamView, id uint) (*models.TeamMember, error) {
	for i := range v.Members {
		if v.Members[i].MemberID == id {
			return &v.Members[i], nil
		}
	}
	return nil, models.ErrNotFound
}

func (h *peopleHandlers) memberForm(remove bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := parseID(c.Param("id"))
		if err != nil {
			return err
		}
		props, err := h.teamProps(c)
		if err != nil {
			return err
		}
		m, err := member(props.View, id)
		if err != nil {
			return err
		}
		if remove {
			props.Remove = m
		} else {
			props.Edit = m
		}
		return web.Render(c, http.StatusOK, views.TeamPage(props))
	}
}

func (h *peopleHandlers) changeMember(c echo.Context) error {
	id, err := parseID(c.Param("id"))
	if err != nil {
		return err
	}
	scope, err := scopeForm(c)
	if err == nil {
		_, err = h.store.ChangeMember(c.Request().Context(), web.Actor(c), id, c.FormValue("role"), scope)
	}
	if fe := models.FieldErrors(err); fe != nil {
		props, perr := h.teamProps(c)
		if perr != nil {
			return perr
		}
		if props.Edit, perr = member(props.View, id); perr != nil {
			return perr
		}
		props.Edit.Role, props.Edit.ScopeAll = models.Role(c.FormValue("role")), scope.All
		props.Errors = fe
		return web.Render(c, http.StatusUnprocessableEntity, views.TeamPage(props))
	}
	if err != nil {
		return err
	}
	return web.Redirect(c, "/team?done=changed")
}

func (h *peopleHandlers) removeMember(c echo.Context) error {
	id, err := parseID(c.Param("id"))
	if err != nil {
		return err
	}
	err = h.store.RemoveMember(c.Request().Context(), web.Actor(c), id)
	if fe := models.FieldErrors(err); fe != nil {
		props, perr := h.teamProps(c)
		if perr != nil {
			return perr
		}
		props.Errors = fe
		return web.Render(c, http.StatusUnprocessableEntity, views.TeamPage(props))
	}
	if err != nil {
		return err
	}
	return web.Redirect(c, "/team?done=removed")
}

func (h *peopleHandlers) require2FA(c echo.Context) error {
	on := c.FormValue("required") == "true"
	if err := h.store.SetRequire2FA(c.Request().Context(), web.Actor(c), on); err != nil {
		return err
	}
	if on {
		return web.Redirect(c, "/team?done=required")
	}
	return web.Redirect(c, "/team?done=optional")
}

// --- invitation links ---

func (h *peopleHandlers) invitationProps(c echo.Context, token string) (views.InvitationProps, int, error) {
	props := views.InvitationProps{Token: token}
	if p := web.Principal(c); p != nil {
		props.SignedInAs = p.User.Email
	}
	v, err := h.store.InvitationByToken(c.Request().Context(), token)
	var ie *models.InvitationError
	if errors.As(err, &ie) {
		props.State = ie.State
		if ie.State == models.InvitationUnknown {
			return props, http.StatusNotFound, nil
		}
		return props, http.StatusGone, nil
	}
	props.View = v
	return props, http.StatusOK, err
}

func (h *peopleHandlers) invitation(c echo.Context) error {
	web.NoStore(c)
	props, status, err := h.invitationProps(c, c.QueryParam("t"))
	if err != nil {
		return err
	}
	return web.Render(c, status, views.InvitationPage(props))
}

// acceptInvitation joins: signed in with the invited address (one click),
// an existing user (password, and code when 2FA is on), or a new person
// (a chosen password).
func (h *peopleHandlers) acceptInvitation(c echo.Context) error {
	web.NoStore(c)
	token := c.FormValue("t")
	props, status, err := h.invitationProps(c, token)
	if err != nil || props.View == nil {
		if err != nil {
			return err
		}
		return web.Render(c, status, views.InvitationPage(props))
	}
	ctx, meta := c.Request().Context(), web.Meta(c)
	var sess string
	switch p := web.Principal(c); {
	case p != nil:
		err = h.store.AcceptInvitationAs(ctx, p, token, meta)
	case props.View.Existing:
		sess, _, err = h.store.AcceptInvitationExisting(ctx, token, c.FormValue("password"), c.FormValue("code"), h.web.SessionToken(c), meta)
	default:
		sess, _, err = h.store.AcceptInvitationNew(ctx, token, c.FormValue("password"), h.web.SessionToken(c), meta)
	}
	var ie *models.InvitationError
	if errors.As(err, &ie) {
		props.View, props.State = nil, ie.State
		return web.Render(c, http.StatusGone, views.InvitationPage(props))
	}
	if secs, ok := throttled(c, err); ok {
		// The view picks "1 minute" or "2 minutes" from the count (msg.attempts_throttled).
		props.Errors = map[string]string{"password": fmt.Sprintf("Too many attempts. Try again in %d minutes.", (secs+59)/60)}
		return web.Render(c, http.StatusTooManyRequests, views.InvitationPage(props))
	}
	if fe := models.FieldErrors(err); fe != nil {
		props.Errors = fe
		return web.Render(c, http.StatusUnprocessableEntity, views.InvitationPage(props))
	}
	if err != nil {
		return err
	}
	if sess != "" {
		if err := h.web.SetSession(c, sess); err != nil {
			return err
		}
	}
	return c.Redirect(http.StatusSeeOther, "/keys")
}

// --- password reset ---

func (h *peopleHandlers) forgotForm(c echo.Context) error {
	return web.Render(c, http.StatusOK, views.ForgotPage(views.ForgotProps{Sent: c.QueryParam("sent") == "1"}))
}

// forgot answers the same whether or not the address is known.
func (h *peopleHandlers) forgot(c echo.Context) error {
	props := views.ForgotProps{Email: c.FormValue("email")}
	token, u, err := h.store.RequestPasswordReset(c.Request().Context(), props.Email, web.Meta(c))
	if secs, ok := throttled(c, err); ok {
		props.RetryAfter = secs
		return web.Render(c, http.StatusTooManyRequests, views.ForgotPage(props))
	}
	if fe := models.FieldErrors(err); fe != nil {
		props.Errors = fe
		return web.Render(c, http.StatusUnprocessableEntity, views.ForgotPage(props))
	}
	if err != nil {
		return err
	}
	if u != nil {
		link := h.web.Config.BaseURL + "/password/reset?" + url.Values{"t": {token}}.Encode()
		// In the language the person chose, else the one they asked in.
		h.mail.passwordReset(c, mailLanguage(c, u.Language), u.Email, link)
	}
	return c.Redirect(http.StatusSeeOther, "/password/forgot?sent=1")
}

func resetState(err error) models.InvitationState {
	var re *models.ResetLinkError
	if errors.As(err, &re) {
		return re.State
	}
	return ""
}

func (h *peopleHandlers) resetForm(c echo.Context) error {
	web.NoStore(c)
	token := c.QueryParam("t")
	err := h.store.CheckResetLink(c.Request().Context(), token)
	if st := resetState(err); st != "" {
		return web.Render(c, http.StatusGone, views.ResetPasswordPage(views.ResetPasswordProps{State: st}))
	}
	if err != nil {
		return err
	}
	return web.Render(c, http.StatusOK, views.ResetPasswordPage(views.ResetPasswordProps{Token: token}))
}

func (h *peopleHandlers) reset(c echo.Context) error {
	web.NoStore(c)
	token := c.FormValue("t")
	err := h.store.ResetPassword(c.Request().Context(), token, c.FormValue("password"), web.Meta(c))
	if st := resetState(err); st != "" {
		return web.Render(c, http.StatusGone, views.ResetPasswordPage(views.ResetPasswordProps{State: st}))
	}
	if fe := models.FieldErrors(err); fe != nil {
		return web.Render(c, http.StatusUnprocessableEntity, views.ResetPasswordPage(views.ResetPasswordProps{Token: token, Errors: fe}))
	}
	if err != nil {
		return err
	}
	h.web.ClearSession(c)
	return c.Redirect(http.StatusSeeOther, "/login?done=reset")
}
