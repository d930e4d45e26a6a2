from django.http import HttpResponse


def hello(request):
    return HttpResponse("Hello from Django\n", content_type="text/plain")
