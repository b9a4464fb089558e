from __future__ import annotations

from django.urls import path

from editor.views import account, developer, edits, files, gallery, gallery_live, jobs, pages, payments, sharing

app_name = "editor"

urlpatterns = [
    path("", pages.home, name="home"),
    path("profile/", pages.profile, name="profile"),
    path("profile/data/export/", account.data_export_request_view, name="data_export_request"),
    path("profile/data/export/<str:token>/", account.data_export_download, name="data_export_download"),
    path("profile/delete/", account.account_delete, name="account_delete"),
    path("account-deleted/", account.account_deleted, name="account_deleted"),
    path("profile/credit-email/", pages.profile_credit_email, name="profile_credit_email"),
    path("profile/ready-email/", pages.profile_ready_email, name="profile_ready_email"),
    path("profile/api-keys/", developer.api_keys, name="api_keys"),
    path("profile/api-keys/<int:pk>/revoke/", developer.api_key_revoke_view, name="api_key_revoke"),
    path("profile/webhooks/", developer.webhooks, name="webhooks"),
    path("profile/webhooks/<int:pk>/<str:action>/", developer.webhook_action, name="webhook_action"),
    path("profile/webhook-deliveries/<int:pk>/redeliver/", developer.webhook_redeliver_view,
         name="webhook_redeliver"),
    path("edit/new/", edits.edit_new, name="edit_new"),
    path("edit/preview/", edits.preview, name="edit_preview"),
    path("edit/upload/start/", edits.upload_start, name="upload_start"),
    path("edit/upload/finish/", edits.upload_finish, name="upload_finish"),
    path("edits/<uuid:pk>/", jobs.job_detail, name="job_detail"),
    path("edits/<uuid:pk>/status/", jobs.job_status, name="job_status"),
    path("edits/<uuid:pk>/retry/", jobs.job_retry, name="job_retry"),
    path("edits/<uuid:pk>/delete/", jobs.job_delete, name="job_delete"),
    path("edits/<uuid:pk>/share/", sharing.share_create, name="share_create"),
    path("edits/<uuid:pk>/share/<int:link_id>/revoke/", sharing.share_revoke, name="share_revoke"),
    path("s/<str:token>/", sharing.shared_page, name="shared_page"),
    path("s/<str:token>/<str:which>.jpg", sharing.shared_image, name="shared_image"),
    path("edits/<uuid:pk>/wrong/", jobs.job_report_wrong, name="job_report_wrong"),
    path("edits/<uuid:pk>/result/", files.job_result, name="job_result"),
    path("edits/<uuid:pk>/download/", files.job_download, name="job_download"),
    path("edits/<uuid:pk>/thumb/", files.job_thumb, name="job_thumb"),
    path("photos/<uuid:pk>/", files.photo_image, name="photo_image"),
    path("photos/<uuid:pk>/thumb/", files.photo_thumb, name="photo_thumb"),
    path("gallery/", gallery.gallery, name="gallery"),
    path("gallery/states/", gallery_live.gallery_states, name="gallery_states"),
    path("credits/", gallery.credits, name="credits"),
    path("credits/buy/", payments.buy, name="buy_credits"),
    path("credits/buy/done/", payments.purchase_done, name="purchase_done"),
    path("credits/buy/status/", payments.purchase_status, name="purchase_status"),
    path("payments/stripe/webhook/", payments.stripe_webhook, name="stripe_webhook"),
]
