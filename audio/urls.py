from django.urls import path

from . import views

app_name = "audio"

urlpatterns = [
    path("", views.index, name="index"),
    path("transcriptions/<int:transcription_id>/", views.transcription, name="transcription"),
    path("transcriptions/<int:transcription_id>/audio", views.transcription_audio, name="transcription_audio"),
    path("transcriptions/<int:transcription_id>/transcript.<str:fmt>", views.transcript_download, name="download"),
    path("speech", views.speech, name="speech"),
    path("clips/<int:clip_id>/audio", views.clip_audio, name="clip"),
    path("voice/", views.voice, name="voice"),
    path("voice/<int:conversation_id>/", views.voice_conversation, name="voice_conversation"),
    path("voice/<int:conversation_id>/turn", views.voice_turn, name="voice_turn"),
]
